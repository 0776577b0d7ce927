#!/usr/bin/env python3
"""Drives Drover's Marathon groups, deployments and event stream with Debian's python3-marathon, unmodified.

Usage: marathon_groups.py URL GROUP_ID   (GROUP_ID a top-level group, e.g. /pyg)
Each step asserts what Marathon would answer; the last line printed is a JSON summary:
{"passed": [steps], "failed": {}}. Any step that does not pass raises. Waits poll a condition with a
deadline (no fixed sleeps); the event stream is read by a daemon thread.
"""
import json
import sys
import threading
import time

from marathon import MarathonClient, NotFoundError
from marathon.models import MarathonApp, MarathonGroup
from marathon.models.events import MarathonDeploymentSuccess, MarathonStatusUpdateEvent

URL, GROUP = sys.argv[1], sys.argv[2]
DB, WEB = f"{GROUP}/db", f"{GROUP}/web"
DEADLINE_S = 90
passed = []
failed = {}


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
        except NotFoundError as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


client = MarathonClient([URL], timeout=30)

# --- the event stream reader, in a daemon thread (its iterator blocks) -------------------------------
events = []
stream_error = []


def read_events():
    try:
        for ev in client.event_stream(event_types=["event_stream_attached", MarathonDeploymentSuccess,
                                                   MarathonStatusUpdateEvent]):
            events.append(ev)
    except Exception as e:  # noqa: BLE001 - reported by the main thread
        stream_error.append(repr(e))


threading.Thread(target=read_events, daemon=True).start()
wait_for("event_stream_attached", lambda: stream_error or [e for e in events if e.event_type == "event_stream_attached"],
         timeout=30)
assert not stream_error, stream_error


def running(app_id, n, cmd=None):
    def check():
        app = client.get_app(app_id, embed_tasks=True)
        alive = [t for t in app.tasks if t.state == "TASK_RUNNING"]
        ok = app.tasks_running == n and len(alive) == n and len(app.tasks) == n and (cmd is None or app.cmd == cmd)
        return app if ok else None
    return check


def deployment_gone(dep):
    return lambda: dep not in {d.id for d in client.list_deployments()}


def sleeper(app_id, **kw):
    return MarathonApp(id=app_id, cmd="sleep 100000", cpus=0.05, mem=16, instances=1, **kw)


# --- create_group: two apps, web depends on db -------------------------------------------------------
created = client.create_group(MarathonGroup(id=GROUP, apps=[sleeper(DB), sleeper(WEB, dependencies=[DB])]))
assert created["deploymentId"] and created["version"], created
create_dep = created["deploymentId"]
wait_for("db running", running(DB, 1))
wait_for("web running", running(WEB, 1))
wait_for("the create's deployment to end", deployment_gone(create_dep))
step("create_group")


# --- get_group / list_groups -------------------------------------------------------------------------
# Drover's GroupInfo leaves out enforceRole (it has no group roles): 0.13's MarathonGroup, which takes no
# enforce_role, reads it.
group = client.get_group(GROUP)
assert group.id == GROUP and sorted(a.id for a in group.apps) == [DB, WEB], group
assert [a.dependencies for a in group.apps if a.id == WEB] == [[DB]], group.apps
step("get_group")

groups = client.list_groups()
assert GROUP in [g.id for g in groups], groups
step("list_groups")

# --- scale_group: scaleBy 2 --------------------------------------------------------------------------
scaled = client.scale_group(GROUP, 2)
assert scaled["deploymentId"] and scaled["version"], scaled
wait_for("db at 2", running(DB, 2))
wait_for("web at 2", running(WEB, 2))
wait_for("the scale's deployment to end", deployment_gone(scaled["deploymentId"]))
assert client.get_app(DB).instances == 2 and client.get_app(WEB).instances == 2
step("scale_group")

# --- update_group: change an app ---------------------------------------------------------------------
updated = client.update_group(GROUP, MarathonGroup(apps=[
    MarathonApp(id=DB, cmd="sleep 200000", cpus=0.05, mem=16, instances=2),
    MarathonApp(id=WEB, cmd="sleep 100000", cpus=0.05, mem=16, instances=2, dependencies=[DB]),
]))
assert updated["deploymentId"] and updated["version"], updated
wait_for("the update's deployment to end", deployment_gone(updated["deploymentId"]))
wait_for("db's new cmd running", running(DB, 2, cmd="sleep 200000"))
assert client.get_app(WEB).cmd == "sleep 100000"
step("update_group")


# --- list_deployments while a group deployment runs; delete_deployment (rollback) and force ----------
def stuck_update(cmd):
    """A group update whose web never becomes healthy: its deployment runs until cancelled."""
    out = client.update_group(GROUP, MarathonGroup(apps=[
        MarathonApp(id=DB, cmd="sleep 200000", cpus=0.05, mem=16, instances=2),
        MarathonApp(id=WEB, cmd=cmd, cpus=0.05, mem=16, instances=2, dependencies=[DB], health_checks=[
            {"protocol": "COMMAND", "command": {"value": "false"}, "gracePeriodSeconds": 300,
             "intervalSeconds": 1}]),
    ]))
    assert out["deploymentId"], out
    return out["deploymentId"]


dep = stuck_update("sleep 100001")
listed = client.list_deployments()
mine = [d for d in listed if d.id == dep]
assert len(mine) == 1 and WEB in mine[0].affected_apps, listed
assert mine[0].total_steps >= 1 and mine[0].version, mine[0]
step("list_deployments")

rollback = client.delete_deployment(dep)
assert rollback["deploymentId"] and rollback["deploymentId"] != dep and rollback["version"], rollback
wait_for("the cancelled deployment to go", deployment_gone(dep))
wait_for("the rollback to end", deployment_gone(rollback["deploymentId"]))
wait_for("web rolled back", running(WEB, 2, cmd="sleep 100000"))
step("delete_deployment (rollback)")

dep = stuck_update("sleep 100002")
assert dep in {d.id for d in client.list_deployments()}
assert client.delete_deployment(dep, force=True) == {}
wait_for("the force-cancelled deployment to go", deployment_gone(dep))
step("delete_deployment(force=True)")

# --- delete_group ------------------------------------------------------------------------------------
deleted = client.delete_group(GROUP)
assert deleted["deploymentId"] and deleted["version"], deleted
try:
    client.get_group(GROUP)
    raise AssertionError("the group is still there after delete_group")
except NotFoundError:
    pass
wait_for("no task of the group left", lambda: not [t for t in client.list_tasks() if t.app_id.startswith(GROUP + "/")])
wait_for("the delete's deployment to end", deployment_gone(deleted["deploymentId"]))
step("delete_group")

# --- what the event stream reader saw ----------------------------------------------------------------
wait_for("deployment_success of the delete on the stream",
         lambda: stream_error or [e for e in events if e.event_type == "deployment_success"
                                  and getattr(e, "id", None) == deleted["deploymentId"]], timeout=30)
assert not stream_error, stream_error
successes = {e.id for e in events if e.event_type == "deployment_success"}
assert {create_dep, scaled["deploymentId"], updated["deploymentId"]} <= successes, successes
updates = [e for e in events if e.event_type == "status_update_event" and e.app_id in (DB, WEB)]
assert {e.task_status for e in updates} >= {"TASK_RUNNING", "TASK_KILLED"}, {e.task_status for e in updates}
assert all(e.task_id and e.host and e.slave_id for e in updates), updates[0]
assert {e.event_type for e in events} <= {"event_stream_attached", "deployment_success", "status_update_event"}
step("event_stream(event_types)")

print(json.dumps({"passed": passed, "failed": failed}))
