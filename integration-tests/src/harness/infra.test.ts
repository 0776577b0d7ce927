import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Etcd3 } from "etcd3";
import { AckPolicy, connect, StringCodec } from "nats";
import { type Infra, startInfra } from "./infra.js";

let infra: Infra | undefined;

function current(): Infra {
  assert.ok(infra, "infra not started");
  return infra;
}

before(async () => {
  infra = await startInfra();
});

after(async () => {
  await infra?.stop();
});

test("etcd container: put then get a key", async () => {
  const { etcdEndpoint } = current();
  assert.match(etcdEndpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
  const client = new Etcd3({ hosts: etcdEndpoint });
  try {
    await client.put("drover-it/hello").value("world");
    assert.equal(await client.get("drover-it/hello").string(), "world");
  } finally {
    client.close();
  }
});

test("NATS container: publish to and consume from a JetStream stream", async () => {
  const { natsUrl } = current();
  assert.match(natsUrl, /^nats:\/\/127\.0\.0\.1:\d+$/);
  const nc = await connect({ servers: natsUrl });
  const sc = StringCodec();
  try {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: "DROVER_IT", subjects: ["drover-it.>"] });
    await jsm.consumers.add("DROVER_IT", { durable_name: "it", ack_policy: AckPolicy.Explicit });
    const js = nc.jetstream();
    const ack = await js.publish("drover-it.hello", sc.encode("world"));
    assert.equal(ack.stream, "DROVER_IT");
    assert.equal(ack.seq, 1);

    const consumer = await js.consumers.get("DROVER_IT", "it");
    const msg = await consumer.next({ expires: 5_000 });
    assert.ok(msg, "no message within 5 s");
    assert.equal(msg.subject, "drover-it.hello");
    assert.equal(sc.decode(msg.data), "world");
    await msg.ackAck();

    const info = await jsm.consumers.info("DROVER_IT", "it");
    assert.equal(info.num_ack_pending, 0);
    assert.equal(info.num_pending, 0);
  } finally {
    await nc.drain();
  }
});
