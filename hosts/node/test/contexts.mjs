// Seeded random evaluation contexts for the differential test and the
// bench, after wasm-host/tests/proptest.rs: attributes the test snapshots
// use, usually well-shaped, sometimes missing or of another type.

/** mulberry32: deterministic numbers in [0, 1). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function generator(seed) {
  const r = rng(seed);
  const int = (lo, hi) => lo + Math.floor(r() * (hi - lo));
  const pick = (xs) => xs[int(0, xs.length)];
  const weighted = (...pairs) => {
    const total = pairs.reduce((n, [w]) => n + w, 0);
    let x = r() * total;
    for (const [w, f] of pairs) {
      if ((x -= w) < 0) return f();
    }
    return pairs[pairs.length - 1][1]();
  };
  // Code points without surrogates: ASCII, Latin-1, Greek, CJK, emoji.
  const char = () => String.fromCodePoint(weighted(
    [6, () => int(0x20, 0x7f)], [1, () => int(0, 0x20)], [1, () => int(0xa0, 0x250)],
    [1, () => int(0x391, 0x3c9)], [1, () => int(0x4e00, 0x4e80)], [1, () => int(0x1f600, 0x1f640)],
  ));
  const text = () => weighted(
    [3, () => pick(["", "user-1", "alice@example.com", "ALICE@EXAMPLE.COM", "jane.doe@acme.io", "x@bunting.dev",
      "Bob@Bunting.Dev", "US", "CA", "DE", "FR", "JP", "free", "pro", "team", "enterprise", "vip", "admin",
      "early-access", "mobile", "desktop", "1.0.0", "2.1", "v3.0.1", "3.0.0-beta"])],
    [3, () => Array.from({ length: int(0, 17) }, char).join("")],
  );
  const junk = (depth = 0) => weighted(
    [1, () => null], [1, () => r() < 0.5], [1, () => int(-1e9, 1e9)], [1, () => (r() - 0.5) * 2e6], [1, text],
    [depth < 2 ? 1 : 0, () => Array.from({ length: int(0, 3) }, () => junk(depth + 1))],
    [depth < 2 ? 1 : 0, () => Object.fromEntries(Array.from({ length: int(0, 3) }, () => [pick(["a", "b", "id", "x"]), junk(depth + 1)]))],
  );
  const attr = (good) => weighted([6, good], [2, () => undefined], [1, () => junk()]);
  const country = () => weighted([4, () => pick(["US", "CA", "MX", "DE", "FR", "IT", "ES", "NL", "JP", "BR"])],
    [1, () => Array.from({ length: int(0, 4) }, () => String.fromCharCode(pick([int(65, 91), int(97, 123)]))).join("")]);
  const version = () => weighted([3, () => pick(["1.0.0", "1.9.9", "2", "2.0", "2.1", "2.1.0", "2.1.0-beta.1", "2.10.3",
    "v3.0.1", "3.0.0", "3.0.0-rc.1", "3.1", "10.0.0+build.5", "banana", "", "1.2.3.4", "4.1.0", "4.2.0", "4.3.1"])],
    [1, () => `${int(0, 12)}.${int(0, 12)}.${int(0, 12)}`]);
  const age = () => weighted([4, () => int(0, 110)], [1, () => r() * 110], [1, () => pick(["young", "old", "42", null, true, 17.999, 65])]);
  const email = () => weighted([2, () => `${text().replace(/[^a-z]/g, "") || "a"}@${pick(["example.com", "EXAMPLE.COM", "bunting.dev", "Bunting.Dev", "acme.io", "mail.example.com", "example.ca"])}`], [1, text]);
  const tags = () => weighted([3, () => Array.from({ length: int(0, 4) }, () => pick(["vip", "admin", "early-access", "beta", "x"]))],
    [1, () => "vip"], [1, () => Array.from({ length: int(0, 3) }, () => junk())]);
  const signup = () => weighted([2, () => int(1_700_000_000_000, 1_780_000_000_000)],
    [2, () => pick(["2024-12-31T23:59:59Z", "2025-05-31T23:59:59.999Z", "2025-06-01T00:00:00Z", "2025-06-01T01:00:00+02:00",
      "2026-01-01T00:00:00Z", "not a date", "2025-02-30T00:00:00Z"])]);
  const targetingKey = () => weighted([8, text], [1, () => `user-${int(0, 100000)}`], [1, () => undefined], [1, () => junk()]);
  const org = () => weighted([3, () => ({ id: weighted([1, () => int(0, 500)], [1, () => `org-${int(0, 1000)}`], [1, () => r() * 10]) })], [1, () => junk()]);
  const device = () => weighted([2, () => pick(["mobile", "desktop"])], [2, () => ({ type: pick(["mobile", "desktop", "tablet"]), os: pick(["iOS", "Android", "Linux"]) })]);

  return function context() {
    const m = {};
    const put = (k, v) => { if (v !== undefined) m[k] = v; };
    put("targetingKey", targetingKey());
    put("country", attr(country));
    const v = attr(version);
    put("app", v === undefined ? undefined : r() < 0.05 ? v : { version: v });
    put("age", attr(age));
    put("email", attr(email));
    put("plan", attr(() => pick(["free", "pro", "team", "enterprise", "Free", ""])));
    put("tags", attr(tags));
    put("signupDate", attr(signup));
    put("org", attr(org));
    put("account", attr(text));
    put("beta", attr(() => r() < 0.5));
    put("device", attr(device));
    put("score", attr(() => r() * 201 - 1));
    put("name", attr(text));
    put("geo", attr(() => ({ country: country() })));
    for (let i = int(0, 2); i > 0; i--) {
      const k = pick(["a", "b", "zz", "q"]);
      if (!(k in m)) m[k] = junk();
    }
    return m;
  };
}

/** Evaluation times between 2025-12-01 and 2026-04-01, plus schedule edges. */
export function nowGenerator(seed) {
  const r = rng(seed);
  return () => r() < 0.8 ? 1_764_547_200_000 + Math.floor(r() * 10_454_400_000)
    : [1_767_225_600_000, 1_767_225_599_999, 1_771_113_600_000, 1_771_155_000_000, 1_772_323_200_000, 1_773_532_800_000][Math.floor(r() * 6)];
}
