import assert from "node:assert/strict";
import { test } from "node:test";
import { AppStore } from "./apps.js";
import { canaryRoom } from "./service.js";

const app = (instances: number, upgradeStrategy: unknown, extra: Record<string, unknown> = {}) =>
  AppStore.parse(JSON.stringify({ id: "/c", cmd: "sleep 1", instances, upgradeStrategy, ...extra }));

test("canaries fit in the upgradeStrategy's over-capacity, with the extra instance when the bounds meet", () => {
  assert.equal(canaryRoom(app(4, { minimumHealthCapacity: 1, maximumOverCapacity: 1 })), 4);
  assert.equal(canaryRoom(app(4, { minimumHealthCapacity: 1, maximumOverCapacity: 0.25 })), 1);
  // 1/0: the minimum meets the maximum, rollingStep allows one extra instance.
  assert.equal(canaryRoom(app(3, { minimumHealthCapacity: 1, maximumOverCapacity: 0 })), 1);
  // 0.5/0: no room at all (canaries kill no old instance).
  assert.equal(canaryRoom(app(4, { minimumHealthCapacity: 0.5, maximumOverCapacity: 0 })), 0);
});
