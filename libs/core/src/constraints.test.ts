import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  attributeText,
  type Constraint,
  ConstraintsSchema,
  compileConstraint,
  compilePattern,
  constraintToArray,
  fieldValue,
  formatConstraint,
  formatScalar,
  MAX_CONSTRAINTS,
  meetsConstraint,
  parseConstraints,
  ValueCounts,
} from "./constraints.js";
import { formatIssues, validate } from "./validation.js";

function parsed(input: unknown): Constraint[] {
  const r = parseConstraints(input);
  assert.ok(r.ok, r.ok ? "" : formatIssues(r.issues));
  return r.value;
}

function problems(input: unknown): string {
  const r = parseConstraints(input);
  assert.ok(!r.ok, "expected issues");
  return formatIssues(r.issues);
}

describe("parseConstraints", () => {
  it("reads Marathon's array form", () => {
    assert.deepEqual(
      parsed([
        ["hostname", "UNIQUE"],
        ["rack", "GROUP_BY", "3"],
        ["rack", "LIKE", "r[12]"],
        ["rack", "UNLIKE", "r[7-9]"],
        ["rack", "MAX_PER", "2"],
        ["rack", "CLUSTER"],
        ["@hostname", "CLUSTER", "a.specific.node.com"],
        ["@region", "IS", "aws-us-east1"],
        ["level", "IS", "0.8"],
      ]),
      [
        { field: "hostname", operator: "UNIQUE" },
        { field: "rack", operator: "GROUP_BY", value: "3" },
        { field: "rack", operator: "LIKE", value: "r[12]" },
        { field: "rack", operator: "UNLIKE", value: "r[7-9]" },
        { field: "rack", operator: "MAX_PER", value: "2" },
        { field: "rack", operator: "CLUSTER" },
        { field: "@hostname", operator: "CLUSTER", value: "a.specific.node.com" },
        { field: "@region", operator: "IS", value: "aws-us-east1" },
        { field: "level", operator: "IS", value: "0.8" },
      ],
    );
  });

  it("reads the Marathon UI's string form, per constraint or as one comma-separated list", () => {
    const expected: Constraint[] = [
      { field: "hostname", operator: "UNIQUE" },
      { field: "rack", operator: "GROUP_BY", value: "3" },
    ];
    assert.deepEqual(parsed(["hostname:UNIQUE", "rack:GROUP_BY:3"]), expected);
    assert.deepEqual(parsed("hostname:UNIQUE, rack:GROUP_BY:3,"), expected);
    assert.deepEqual(parsed(" hostname : unique "), [expected[0]]);
    assert.deepEqual(parsed(["hostname:UNIQUE", ["rack", "GROUP_BY", "3"]]), expected);
    assert.deepEqual(parsed(""), []);
    assert.deepEqual(parsed([]), []);
    assert.deepEqual(parsed(undefined), []);
  });

  it("takes operators in any case, and keeps identical constraints once (Marathon keeps a set)", () => {
    assert.deepEqual(parsed([["rack", "group_by"], ["rack", "Group_By"], "hostname:unique"]), [
      { field: "rack", operator: "GROUP_BY" },
      { field: "hostname", operator: "UNIQUE" },
    ]);
  });

  it("treats an empty CLUSTER value as none (pin to the first agent's value)", () => {
    assert.deepEqual(parsed([["rack", "CLUSTER", ""]]), [{ field: "rack", operator: "CLUSTER" }]);
  });

  it("names the index and the problem of each bad constraint", () => {
    assert.equal(
      problems([
        ["hostname", "UNIQUE"],
        ["rack", "GROUP_BY", "x"],
      ]),
      "constraints[1]: GROUP_BY value must be a positive integer (the number of groups), or no value at all",
    );
    assert.equal(
      problems([["rack", "GROUP_BY", "0"]]),
      "constraints[0]: GROUP_BY value must be a positive integer (the number of groups), or no value at all",
    );
    assert.equal(
      problems([["rack", "NEAR"]]),
      'constraints[0]: unknown operator "NEAR": must be one of UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS',
    );
    assert.equal(problems([["hostname", "UNIQUE", "x"]]), "constraints[0]: UNIQUE does not accept a value");
    assert.equal(problems([["rack", "MAX_PER"]]), "constraints[0]: MAX_PER value must be a positive integer");
    assert.equal(
      problems([["rack", "MAX_PER", "2.5"]]),
      "constraints[0]: MAX_PER value must be a positive integer",
    );
    assert.equal(
      problems([["rack", "LIKE"]]),
      "constraints[0]: LIKE requires a value: a regular expression for the whole field value",
    );
    assert.equal(
      problems([["rack", "UNLIKE", ""]]),
      "constraints[0]: UNLIKE requires a value: a regular expression for the whole field value",
    );
    assert.match(
      problems([["rack", "LIKE", "r[12"]]),
      /^constraints\[0\]: LIKE value is not a valid regular expression/,
    );
    assert.match(
      problems([["rack", "UNLIKE", "a)|(b"]]),
      /^constraints\[0\]: UNLIKE value is not a valid regular/,
    );
    assert.equal(problems([["rack", "IS"]]), "constraints[0]: IS requires a value");
    assert.equal(
      problems([["rack", "IS", "r 1"]]),
      "constraints[0]: IS value must be a Mesos text or scalar value: letters, digits, '_', '/', '.', '-'",
    );
    assert.equal(problems([["", "UNIQUE"]]), "constraints[0]: missing field");
    assert.match(
      problems([["@datacenter", "UNIQUE"]]),
      /^constraints\[0\]: field must be hostname, @hostname/,
    );
    assert.equal(
      problems([["rack"], ["a", "b", "c", "d"]]),
      "constraints[0]: must be [field, operator] or [field, operator, value]; " +
        "constraints[1]: must be [field, operator] or [field, operator, value]",
    );
    assert.equal(
      problems([["rack", "GROUP_BY", 3]]),
      "constraints[0]: field, operator and value must be strings",
    );
    assert.equal(
      problems(["rack", "rack:LIKE:(?:a|b)"]),
      `constraints[0]: must be "field:operator" or "field:operator:value" (use the array form for a value with ':' or ','); ` +
        `constraints[1]: must be "field:operator" or "field:operator:value" (use the array form for a value with ':' or ',')`,
    );
    assert.equal(problems([7]), "constraints[0]: expected array, got number");
    assert.equal(problems({}), "constraints: expected array, got object");
  });

  it("refuses more than MAX_CONSTRAINTS constraints and over-long values", () => {
    const many = Array.from({ length: MAX_CONSTRAINTS + 1 }, (_, i) => [
      "hostname",
      "MAX_PER",
      String(i + 1),
    ]);
    assert.equal(problems(many), `constraints: must have at most ${MAX_CONSTRAINTS} items`);
    assert.equal(
      problems([["rack", "LIKE", "a".repeat(1025)]]),
      "constraints[0]: LIKE value must be at most 1024 characters",
    );
  });

  it("gives relative paths when embedded in another schema", () => {
    const r = validate(ConstraintsSchema, [
      ["hostname", "UNIQUE"],
      ["rack", "MAX_PER", "-1"],
    ]);
    assert.deepEqual(r, {
      ok: false,
      issues: [{ path: "[1]", message: "MAX_PER value must be a positive integer" }],
    });
  });

  it("formats constraints back in both syntaxes", () => {
    const c: Constraint = { field: "rack", operator: "GROUP_BY", value: "3" };
    assert.equal(formatConstraint(c), "rack:GROUP_BY:3");
    assert.deepEqual(constraintToArray(c), ["rack", "GROUP_BY", "3"]);
    assert.equal(formatConstraint({ field: "hostname", operator: "UNIQUE" }), "hostname:UNIQUE");
    assert.deepEqual(parsed([formatConstraint(c)]), [c]);
  });
});

describe("constraint values", () => {
  it('prints scalars as Marathon\'s DecimalFormat("0.###") does: half-even on the exact double', () => {
    // Examples from Constraints.scala's comment and docs/docs/constraints.md.
    assert.equal(formatScalar(1.0005), "1");
    assert.equal(formatScalar(1.00051), "1.001");
    assert.equal(formatScalar(1.1005), "1.101");
    assert.equal(formatScalar(0.8001), "0.8");
    assert.equal(formatScalar(0.8), "0.8");
    // Exact ties (odd sixteenths) go to the even neighbour, not up as toFixed would.
    assert.equal(formatScalar(1.0625), "1.062");
    assert.equal(formatScalar(1.1875), "1.188");
    assert.equal(formatScalar(-0.0625), "-0.062");
    assert.equal(formatScalar(100), "100");
    assert.equal(formatScalar(1e21), "1000000000000000000000");
  });

  it("reads attribute values as Mesos types them: scalars in Marathon's print, other text as given", () => {
    assert.equal(attributeText("1.0"), "1");
    assert.equal(attributeText("0.80"), "0.8");
    assert.equal(attributeText("1.10"), "1.1");
    assert.equal(attributeText("rack-1"), "rack-1");
    assert.equal(attributeText("[1-2]"), "[1-2]");
    const facts = { hostname: "h1", attributes: { rack: "r1", level: "0.80" }, region: "eu" };
    assert.equal(fieldValue(facts, "hostname"), "h1");
    assert.equal(fieldValue(facts, "rack"), "r1");
    assert.equal(fieldValue(facts, "level"), "0.8");
    assert.equal(fieldValue(facts, "@region"), "eu");
    assert.equal(fieldValue(facts, "@zone"), undefined);
    assert.equal(fieldValue(facts, "constructor"), undefined);
    assert.equal(fieldValue(undefined, "hostname"), undefined);
  });

  it("matches LIKE / UNLIKE patterns against the whole value, Java-style", () => {
    assert.equal(compilePattern("r[12]").test("r1"), true);
    assert.equal(compilePattern("r[12]").test("r12"), false);
    assert.equal(compilePattern("a|b").test("ab"), false);
    assert.equal(compilePattern("(?i)rack-.*").test("RACK-1"), true);
    assert.throws(() => compilePattern("a)|(b"));
  });
});

/** Counts from instance values, as Marathon's checks see the app's instances. */
function counts(...values: (string | undefined)[]): ValueCounts {
  return ValueCounts.of(values.map((v) => [v, 1] as const));
}

function meets(c: Constraint, value: string | undefined, placed: (string | undefined)[] = []): boolean {
  return meetsConstraint(compileConstraint(c), value, counts(...placed));
}

describe("meetsConstraint (cases from Marathon's ConstraintsTest)", () => {
  const rack = (operator: Constraint["operator"], value?: string): Constraint =>
    value === undefined ? { field: "rack", operator } : { field: "rack", operator, value };

  it("UNIQUE: no instance has the value", () => {
    const host = { field: "hostname", operator: "UNIQUE" } as const;
    assert.equal(meets(host, "host2"), true);
    assert.equal(meets(host, "host4", ["host1", "host2", "host3"]), true);
    assert.equal(meets(host, "host2", ["host1", "host2", "host3"]), false);
    // An instance on an agent lacking the field does not block.
    assert.equal(meets(rack("UNIQUE"), "r1", [undefined]), true);
  });

  it("CLUSTER: a value pins; without one, the first instance's value does", () => {
    assert.equal(meets(rack("CLUSTER", "r1"), "r1"), true);
    assert.equal(meets(rack("CLUSTER", "r1"), "r2"), false);
    assert.equal(meets(rack("CLUSTER"), "r2"), true);
    assert.equal(meets(rack("CLUSTER"), "r2", ["r2", "r2"]), true);
    assert.equal(meets(rack("CLUSTER"), "r1", ["r2"]), false);
    // Marathon's first instance has no value: nothing matches.
    assert.equal(meets(rack("CLUSTER"), "r1", [undefined]), false);
    // Drover cannot tell which instance was first: the value most instances share (tie: lowest).
    assert.equal(meets(rack("CLUSTER"), "r2", ["r2", "r1", "r2"]), true);
    assert.equal(meets(rack("CLUSTER"), "r1", ["r2", "r1"]), true);
    assert.equal(meets(rack("CLUSTER"), "r2", ["r2", "r1"]), false);
    const vc = new ValueCounts();
    vc.add("r3");
    vc.add("r1");
    assert.equal(vc.anchor, "r3", "in a pass, the first instance placed pins");
  });

  it("GROUP_BY (Marathon ≤ 1.10): a new value, or the smallest group once there are enough groups", () => {
    // RackGroupedByConstraints
    assert.equal(meets(rack("GROUP_BY", "2"), "rack-1"), true);
    assert.equal(meets(rack("GROUP_BY", "2"), "rack-1", ["rack-1"]), false);
    assert.equal(meets(rack("GROUP_BY", "2"), "rack-2", ["rack-1"]), true);
    assert.equal(meets(rack("GROUP_BY", "2"), "rack-1", ["rack-1", "rack-2"]), true);
    assert.equal(meets(rack("GROUP_BY", "2"), "rack-1", ["rack-1", "rack-1", "rack-2"]), false);
    assert.equal(meets(rack("GROUP_BY", "2"), undefined), false);
    // RackGroupedByConstraints2
    const three = ["rack-1", "rack-2", "rack-3"];
    assert.equal(meets(rack("GROUP_BY", "3"), "rack-3", ["rack-1", "rack-2"]), true);
    assert.equal(meets(rack("GROUP_BY", "3"), "rack-1", three), true);
    assert.equal(meets(rack("GROUP_BY", "3"), "rack-2", [...three, "rack-1"]), true);
    assert.equal(meets(rack("GROUP_BY", "3"), "rack-2", [...three, "rack-1", "rack-2"]), false);
    // HostnameGroupedByConstraints
    const host = { field: "hostname", operator: "GROUP_BY", value: "2" } as const;
    assert.equal(meets(host, "host1", ["host1"]), false);
    assert.equal(meets(host, "host2", ["host1"]), true);
    assert.equal(meets(host, "host1", ["host1", "host2"]), true);
    assert.equal(meets(host, "host1", ["host1", "host2", "host1"]), false);
    assert.equal(meets(host, "host3", ["host1", "host2", "host1"]), true);
    assert.equal(meets(host, "host1", ["host1", "host2", "host1", "host3"]), false);
    assert.equal(meets(host, "host3", ["host1", "host2", "host1", "host3"]), true);
    assert.equal(meets(host, "host2", ["host1", "host2", "host1", "host3"]), true);
    // Without a value: even spread over the values seen.
    assert.equal(meets(rack("GROUP_BY"), "r1", ["r1"]), true);
    assert.equal(meets(rack("GROUP_BY"), "r1", ["r1", "r2", "r1"]), false);
    // Instances on agents lacking the field are one more group (Marathon's groupBy on an Option).
    assert.equal(meets(rack("GROUP_BY"), "r1", ["r1", "r1", undefined]), false);
    assert.equal(meets(rack("GROUP_BY"), "r1", ["r1", undefined]), true);
  });

  it("MAX_PER: fewer than n instances have the value", () => {
    const maxPer = rack("MAX_PER", "2");
    assert.equal(meets(maxPer, "1"), true);
    assert.equal(meets(maxPer, "1", ["1"]), true);
    assert.equal(meets(maxPer, "2", ["1", "1"]), true);
    assert.equal(meets(maxPer, "1", ["1", "1", "2"]), false);
  });

  it("LIKE / UNLIKE: regex over the whole value; an agent lacking the field passes only UNLIKE", () => {
    assert.equal(meets(rack("LIKE", "rack-[1-3]"), "rack-2"), true);
    assert.equal(meets(rack("LIKE", "rack-[1-3]"), "rack-22"), false);
    assert.equal(meets(rack("UNLIKE", "rack-[7-9]"), "rack-8"), false);
    assert.equal(meets(rack("UNLIKE", "rack-[7-9]"), "rack-1"), true);
    assert.equal(meets(rack("UNLIKE", "rack-[7-9]"), undefined), true);
    for (const op of ["UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "MAX_PER", "IS"] as const) {
      const c = compileConstraint({ field: "rack", operator: op, value: op === "UNIQUE" ? undefined : "1" });
      assert.equal(meetsConstraint(c, undefined, counts()), false, `${op} on an agent lacking the field`);
    }
  });

  it("IS: equal values, scalars compared as Marathon prints them", () => {
    for (const v of ["0.8", "0.80", "0.8001"])
      assert.equal(meets({ field: "level", operator: "IS", value: v }, attributeText("0.8")), true, v);
    assert.equal(meets(rack("IS", "rack-1"), "rack-1"), true);
    assert.equal(meets(rack("IS", "rack-1"), "rack-10"), false);
  });

  it("judges values Marathon's validation takes and parseConstraints refuses as Marathon does", () => {
    // GROUP_BY "0" or "-2": no minimum number of groups (max(0, n)); MAX_PER "0": no agent.
    for (const v of ["0", "-2", "+0"]) {
      assert.equal(meets(rack("GROUP_BY", v), "r1", ["r1", "r2"]), true, v);
      assert.equal(meets(rack("GROUP_BY", v), "r1", ["r1", "r1", "r2"]), false, v);
    }
    assert.equal(meets(rack("MAX_PER", "0"), "r1"), false);
    assert.equal(meets(rack("MAX_PER", "+2"), "r1", ["r1"]), true);
  });

  it("rejects every agent for a constraint built by hand with a value that does not parse", () => {
    assert.equal(meets(rack("MAX_PER", "x"), "r1"), false);
    assert.equal(meets(rack("GROUP_BY", "3.0"), "r1"), false);
    assert.equal(meets(rack("LIKE", "("), "("), false);
    assert.equal(meets(rack("UNLIKE", "("), "r1"), false);
  });
});
