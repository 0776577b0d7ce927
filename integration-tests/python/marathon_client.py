#!/usr/bin/env python3
"""Drives Drover's Marathon API with Debian's python3-marathon client, unmodified.

Usage: marathon_client.py LEADER_URL FOLLOWER_URL APP_ID
Each step asserts what Marathon would answer; the last line printed is a JSON summary of the
steps that passed. Waits poll a condition with a deadline (no fixed sleeps).
"""
import json
import sys
import time

from marathon import MarathonClient, NotFoundError
from marathon.models import MarathonApp

LEADER, FOLLOWER, APP_ID = sys.argv[1], sys.argv[2], sys.argv[3]
DEADLINE_S = 90
passed = []


def step(name):
    passed.append(name)
    print(f"ok {name}", flush=True)


def wait_for(what, check, timeout=DEADLINE_S):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = check()
            if last:
                return last
        except NotFoundError as e:  # a condition may read an app that is not there yet
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def running(client, n):
    def check():
        app = client.get_app(APP_ID, embed_tasks=True)
        alive = [t for t in app.tasks if t.state == "TASK_RUNNING"]
        return app if app.tasks_running == n and len(alive) == n and len(app.tasks) == n else None
    return check


# The follower forwards to the leader: the client is given both, the follower first.
client = MarathonClient([FOLLOWER, LEADER], timeout=30)

created = client.create_app(APP_ID, MarathonApp(cmd="sleep 100000", cpus=0.05, mem=16, instances=1,
                                                labels={"suite": "python-marathon"}))
assert created and created.id == APP_ID, created
assert created.instances == 1
step("create_app")

app = wait_for("1 task running", running(client, 1))
assert app.tasks[0].host and app.tasks[0].slave_id, app.tasks[0]
step("get_app(embed_tasks)")

apps = client.list_apps(embed_tasks=True, embed_counts=True, label="suite==python-marathon")
assert [a.id for a in apps] == [APP_ID], apps
assert len(apps[0].tasks) == 1 and apps[0].tasks_running == 1
assert client.list_apps(app_id="no-such-app") == []
step("list_apps(embed_tasks, embed_counts, label, app_id)")

result = client.scale_app(APP_ID, instances=2)
assert "deploymentId" in result and "version" in result, result
wait_for("2 tasks running", running(client, 2))
step("scale_app")

tasks = client.list_tasks(APP_ID)
assert len(tasks) == 2 and all(t.app_id == APP_ID for t in tasks), tasks
assert all(t.state == "TASK_RUNNING" and t.started_at for t in tasks), tasks
all_tasks = client.list_tasks()
assert {t.id for t in tasks} <= {t.id for t in all_tasks}
step("list_tasks")

victim = tasks[0].id
killed = client.kill_task(APP_ID, victim, scale=True)
assert "deploymentId" in killed, killed
wait_for("scaled to 1 without the killed task",
         lambda: (lambda a: a.instances == 1 and a.tasks_running == 1 and victim not in {t.id for t in a.tasks})(
             client.get_app(APP_ID, embed_tasks=True)))
step("kill_task(scale=True)")

before = {t.id for t in client.list_tasks(APP_ID)}
gone = client.kill_tasks(APP_ID)
assert {t.id for t in gone} == before, (gone, before)
wait_for("a replacement running",
         lambda: (lambda a: a.tasks_running == 1 and not ({t.id for t in a.tasks} & before))(
             client.get_app(APP_ID, embed_tasks=True)))
step("kill_tasks (replaced)")

updated = client.update_app(APP_ID, MarathonApp(cmd="sleep 200000"))
dep = updated["deploymentId"]
assert dep and updated["version"], updated
deployments = client.list_deployments()
assert all(d.id for d in deployments)
wait_for("the update's deployment to end", lambda: dep not in {d.id for d in client.list_deployments()})
wait_for("the new definition running", lambda: (lambda a: a.cmd == "sleep 200000" and a.tasks_running == 1)(
    client.get_app(APP_ID, embed_tasks=True)))
step("update_app + list_deployments")

restarted = client.restart_app(APP_ID)
assert restarted["deploymentId"], restarted
wait_for("the restart's deployment to end",
         lambda: restarted["deploymentId"] not in {d.id for d in client.list_deployments()})
step("restart_app")

versions = client.list_versions(APP_ID)
assert len(versions) >= 3, versions
old = client.get_version(APP_ID, versions[-1])
assert old.cmd == "sleep 100000", old.cmd
step("list_versions + get_version")

queue = client.list_queue()
assert isinstance(queue, list)
step("list_queue")

info = client.get_info()
assert info.name and info.leader, info
assert client.get_leader(), "no leader"
assert "pong" in str(client.ping())
metrics = client.get_metrics()
assert isinstance(metrics.get("counters"), dict) and isinstance(metrics.get("gauges"), dict), metrics
step("get_info + get_leader + ping + get_metrics")

deleted = client.delete_app(APP_ID)
assert "deploymentId" in deleted, deleted
try:
    client.get_app(APP_ID)
    raise AssertionError("the app is still there after delete_app")
except NotFoundError:
    pass
wait_for("no task left", lambda: not [t for t in client.list_tasks() if t.app_id == APP_ID])
step("delete_app")

print(json.dumps({"passed": passed}))
