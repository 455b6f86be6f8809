//! The flags and users every engine is given, and a reference of which rule
//! each user matches, independent of any engine.

/// Variants (and values: each variant's value is its name) of every flag, in
/// the order LaunchDarkly's variation indexes use.
pub const VARIANTS: [&str; 3] = ["control", "treatment", "off"];

/// What a flag serves when its second rule (the three-clause one) matches
/// and when no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// The benchmark flag: a 50/50 rollout on the rule, 90/10 as fallthrough.
    Rollout,
    /// The same rules serving fixed variants (`control` on the rule, `off`
    /// as fallthrough), so rule matching can be compared exactly.
    Fixed,
}

/// One flag, described once for all engines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagSpec {
    /// No rules: always serves `control`.
    Plain {
        /// Flag key.
        key: String,
    },
    /// The flag of `core/benches/engine.rs`: a rule
    /// `email ends_with "@bunting.dev" || segment("staff")` serving
    /// `treatment`, a rule
    /// `country in ["US","CA","GB"] && semver(app.version) >= "2.<minor>.0" && !(plan == "free")`,
    /// and a fallthrough. A flag of a `team` has rules of its own text:
    /// the e-mail suffix is `@team-<team>.bunting.dev` ([`internal_suffix`])
    /// and the country list also holds `Z<team>` ([`launch_countries`]),
    /// which no user has.
    Targeted {
        /// Flag key.
        key: String,
        /// The minor version of the semver threshold.
        minor: u32,
        /// What the second rule and the fallthrough serve.
        serving: Serving,
        /// The team whose rules the flag has (`None`: the benchmark's
        /// shared rule texts).
        team: Option<u32>,
    },
}

impl FlagSpec {
    /// The flag's key.
    pub fn key(&self) -> &str {
        match self {
            FlagSpec::Plain { key } | FlagSpec::Targeted { key, .. } => key,
        }
    }
}

/// The benchmark flag `flag-<i>` (rollouts, threshold `2.<i % 7>.0`).
pub fn rollout_flag(i: usize) -> FlagSpec {
    FlagSpec::Targeted {
        key: format!("flag-{i}"),
        minor: (i % 7) as u32,
        serving: Serving::Rollout,
        team: None,
    }
}

/// `fixed-<i>`: the benchmark flag's rules serving fixed variants.
pub fn fixed_flag(i: usize) -> FlagSpec {
    FlagSpec::Targeted {
        key: format!("fixed-{i}"),
        minor: (i % 7) as u32,
        serving: Serving::Fixed,
        team: None,
    }
}

/// `team-<i>`: the benchmark flag with rules of team `i`'s own text, so
/// that no two such flags share a condition (bunting evaluates a condition
/// text shared by several flags once per evaluate-all; the benchmark
/// flags have 8 distinct conditions in all).
pub fn team_flag(i: usize) -> FlagSpec {
    FlagSpec::Targeted {
        key: format!("team-{i}"),
        minor: (i % 7) as u32,
        serving: Serving::Rollout,
        team: Some(i as u32),
    }
}

/// `n` flags of distinct rules, `team-0` … `team-<n-1>`.
pub fn team_flags(n: usize) -> Vec<FlagSpec> {
    (0..n).map(team_flag).collect()
}

/// The e-mail suffix of the first rule: `@bunting.dev`, or
/// `@team-<team>.bunting.dev` for a team's flag.
pub fn internal_suffix(team: Option<u32>) -> String {
    match team {
        None => "@bunting.dev".to_string(),
        Some(t) => format!("@team-{t}.bunting.dev"),
    }
}

/// The countries of the three-clause rule: `US`, `CA`, `GB`, and for a
/// team's flag also `Z<team>`.
pub fn launch_countries(team: Option<u32>) -> Vec<String> {
    let mut countries: Vec<String> = ["US", "CA", "GB"].map(String::from).to_vec();
    countries.extend(team.map(|t| format!("Z{t}")));
    countries
}

/// `plain-<i>`: a flag without rules.
pub fn plain_flag(i: usize) -> FlagSpec {
    FlagSpec::Plain {
        key: format!("plain-{i}"),
    }
}

/// `n` benchmark flags, `flag-0` … `flag-<n-1>`.
pub fn rollout_flags(n: usize) -> Vec<FlagSpec> {
    (0..n).map(rollout_flag).collect()
}

/// The members of the segment `staff` by key.
pub const STAFF: [&str; 2] = ["admin-1", "admin-2"];

/// A user: the same attributes are given to every engine; an absent
/// attribute is left out of every engine's context.
///
/// `plan` is always present: `!(plan == "free")` is true on a missing `plan`
/// in bunting and Unleash (`NOT_IN`), but LaunchDarkly's negated clause is
/// false on a missing attribute (it does not match before negating), a
/// difference of semantics no rendering removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Targeting key (bunting), user id (Unleash), context key (LaunchDarkly).
    pub key: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Country code.
    pub country: Option<String>,
    /// Plan name.
    pub plan: String,
    /// Application version (`app.version`; Unleash has flat properties, so
    /// `appVersion` there).
    pub app_version: Option<String>,
    /// Department (the segment `staff` includes `eng`).
    pub department: Option<String>,
}

/// The user of `core/benches/engine.rs`: matches the three-clause rule of
/// every benchmark flag, so a rollout is evaluated.
pub fn bench_user() -> User {
    User {
        key: "user-12345".into(),
        email: Some("jane@example.com".into()),
        country: Some("CA".into()),
        plan: "pro".into(),
        app_version: Some("2.4.1".into()),
        department: Some("sales".into()),
    }
}

/// `n` varied users, deterministic: every attribute cycles through values
/// that match and values that do not (including semver edge cases such as
/// `2.10.0` against `2.6.0`), with co-prime cycle lengths so the
/// combinations vary; every 11th user has no e-mail, every 13th no country,
/// every 17th no version and every 19th no department; two users are the
/// members of `staff`.
pub fn users(n: usize) -> Vec<User> {
    const DOMAINS: [&str; 5] = [
        "example.com",
        "bunting.dev",
        "bunting.dev.example",
        "mail.org",
        "team-1.bunting.dev",
    ];
    const COUNTRIES: [&str; 5] = ["US", "CA", "GB", "FR", "JP"];
    const PLANS: [&str; 3] = ["pro", "free", "team"];
    const VERSIONS: [&str; 9] = [
        "1.9.9", "2.0.0", "2.1.3", "2.2.0", "2.3.10", "2.4.1", "2.5.0", "2.10.0", "3.0.0",
    ];
    const DEPARTMENTS: [&str; 7] = ["sales", "ops", "eng", "design", "sales", "legal", "ops"];
    // A small multiplicative hash decorrelates the domain from the index.
    (0..n)
        .map(|i| {
            let key = match i {
                17 => STAFF[0].to_string(),
                501 => STAFF[1].to_string(),
                _ => format!("user-{i}"),
            };
            let mix = i.wrapping_mul(2_654_435_761) >> 7;
            let unless = |every: usize, value: String| (i % every != every - 1).then_some(value);
            User {
                email: unless(11, format!("person{i}@{}", DOMAINS[mix % DOMAINS.len()])),
                country: unless(13, COUNTRIES[i % COUNTRIES.len()].into()),
                plan: PLANS[(i / 2) % PLANS.len()].into(),
                app_version: unless(17, VERSIONS[(i / 3) % VERSIONS.len()].into()),
                department: unless(19, DEPARTMENTS[(i / 5) % DEPARTMENTS.len()].into()),
                key,
            }
        })
        .collect()
}

/// Which branch of a targeted flag a user takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Branch {
    /// The first rule (`@bunting.dev` e-mail or member of `staff`).
    Internal,
    /// The three-clause rule.
    Launch,
    /// No rule matched.
    Fallthrough,
}

/// The branch `user` takes in a benchmark flag with threshold
/// `2.<minor>.0`, computed here from the rules' meaning, not by any
/// engine.
pub fn reference_branch(user: &User, minor: u32) -> Branch {
    team_reference_branch(user, minor, None)
}

/// The branch `user` takes in a targeted flag with threshold `2.<minor>.0`
/// and the rules of `team` (see [`FlagSpec::Targeted`]).
pub fn team_reference_branch(user: &User, minor: u32, team: Option<u32>) -> Branch {
    let staff = STAFF.contains(&user.key.as_str()) || user.department.as_deref() == Some("eng");
    let suffix = internal_suffix(team);
    if user
        .email
        .as_deref()
        .is_some_and(|e| e.ends_with(suffix.as_str()))
        || staff
    {
        return Branch::Internal;
    }
    let countries = launch_countries(team);
    let launch = user
        .country
        .as_deref()
        .is_some_and(|c| countries.iter().any(|k| k == c))
        && user
            .app_version
            .as_deref()
            .is_some_and(|v| semver_at_least(v, (2, minor, 0)))
        && user.plan != "free";
    if launch {
        Branch::Launch
    } else {
        Branch::Fallthrough
    }
}

/// `version >= threshold` for plain `major.minor.patch` versions.
fn semver_at_least(version: &str, threshold: (u32, u32, u32)) -> bool {
    let mut parts = version
        .split('.')
        .map(|p| p.parse::<u32>().expect("numeric version"));
    let mut next = || parts.next().expect("three parts");
    (next(), next(), next()) >= threshold
}

/// The variant a `Fixed` flag serves on `branch` (`Rollout` flags serve
/// `treatment` on `Internal`, otherwise a bucketed choice).
pub fn fixed_variant(branch: Branch) -> &'static str {
    match branch {
        Branch::Internal => "treatment",
        Branch::Launch => "control",
        Branch::Fallthrough => "off",
    }
}

/// The share of `treatment` a `Rollout` flag serves on `branch`.
pub fn treatment_share(branch: Branch) -> f64 {
    match branch {
        Branch::Internal => 1.0,
        Branch::Launch => 0.5,
        Branch::Fallthrough => 0.1,
    }
}
