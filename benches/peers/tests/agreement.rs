//! The agreement check of the peer benchmark, run by `cargo test --workspace`:
//! bunting, unleash-yggdrasil and launchdarkly-server-sdk-evaluation give
//! the same answers to 1,000 varied users on flags rendered from one
//! description.

use bunting_peer_bench::agreement::{AgreementError, Documents, Plan, check, check_documents};
use bunting_peer_bench::spec::{Branch, STAFF, reference_branch, team_reference_branch, users};

#[test]
fn all_engines_agree_on_a_thousand_users() {
    let users = users(1000);
    // Every semver threshold (i % 7) appears among the targeted flags.
    let plan = Plan {
        plain: 2,
        fixed: 7,
        rollout: 14,
        team: 4,
    };
    let agreement = check(&users, plan).unwrap_or_else(|e| panic!("{e}"));
    println!("{agreement}");
    assert_eq!(agreement.engines.len(), 3);
    // Exact answers: plain and fixed flags for every user, plus the users of
    // the first rule on the rollout flags.
    let internal = users
        .iter()
        .filter(|u| reference_branch(u, 0) == Branch::Internal)
        .count();
    // Team flags have their own e-mail suffix: team-1's rule matches the
    // users at team-1.bunting.dev, the others' only staff.
    let team_internal: usize = (0..plan.team as u32)
        .map(|t| {
            users
                .iter()
                .filter(|u| team_reference_branch(u, t % 7, Some(t)) == Branch::Internal)
                .count()
        })
        .sum();
    let exact = (plan.plain + plan.fixed) * users.len() + plan.rollout * internal + team_internal;
    for report in &agreement.engines {
        assert_eq!(report.exact, exact, "{}", report.engine);
        assert_eq!(
            report.launch.users + report.fallthrough.users,
            (plan.rollout + plan.team) * users.len() - plan.rollout * internal - team_internal
        );
        assert!(
            report.launch.users > 500 && report.fallthrough.users > 500,
            "{report:?}"
        );
    }
}

#[test]
fn the_users_take_every_branch_of_every_threshold_and_miss_attributes() {
    let users = users(1000);
    for minor in 0..7 {
        for branch in [Branch::Internal, Branch::Launch, Branch::Fallthrough] {
            let n = users
                .iter()
                .filter(|u| reference_branch(u, minor) == branch)
                .count();
            assert!(n >= 30, "only {n} users take {branch:?} at 2.{minor}.0");
        }
    }
    // Each optional attribute is missing for some users.
    let missing =
        |f: fn(&bunting_peer_bench::spec::User) -> bool| users.iter().filter(|u| f(u)).count();
    assert!(missing(|u| u.email.is_none()) >= 50);
    assert!(missing(|u| u.country.is_none()) >= 50);
    assert!(missing(|u| u.app_version.is_none()) >= 50);
    assert!(missing(|u| u.department.is_none()) >= 50);
}

#[test]
fn the_split_bound_rejects_a_skewed_rollout() {
    use bunting_peer_bench::agreement::Split;
    assert!(
        Split {
            treatment: 500,
            users: 1000
        }
        .plausible(0.5)
    );
    assert!(
        !Split {
            treatment: 600,
            users: 1000
        }
        .plausible(0.5)
    );
    assert!(
        !Split {
            treatment: 0,
            users: 1000
        }
        .plausible(0.1)
    );
}

#[test]
fn a_different_rule_in_one_engine_is_caught() {
    // `>` instead of `>=` in Unleash's document only: the users whose
    // version equals a threshold get a different answer.
    let users = users(1000);
    let plan = Plan {
        plain: 0,
        fixed: 7,
        rollout: 0,
        team: 0,
    };
    let mut documents = Documents::render(plan);
    assert!(documents.unleash.contains("\"SEMVER_GTE\""));
    documents.unleash = documents.unleash.replace("\"SEMVER_GTE\"", "\"SEMVER_GT\"");
    match check_documents(&users, plan, &documents) {
        Err(AgreementError::Disagree(problems)) => {
            assert!(!problems.is_empty());
            assert!(
                problems
                    .iter()
                    .all(|p| p.starts_with("unleash-yggdrasil: fixed-")),
                "{problems:?}"
            );
        }
        other => panic!("expected a disagreement, got {other:?}"),
    }
}

#[test]
fn a_skewed_rollout_in_one_engine_is_caught() {
    // LaunchDarkly serving the 50/50 rule as 70/30: every answer is a valid
    // variant, only the split is wrong.
    let users = users(1000);
    let plan = Plan {
        plain: 0,
        fixed: 0,
        rollout: 7,
        team: 0,
    };
    let mut documents = Documents::render(plan);
    let even = "{\"variation\":0,\"weight\":50000},{\"variation\":1,\"weight\":50000}";
    assert!(documents.launchdarkly.contains(even));
    documents.launchdarkly = documents.launchdarkly.replace(
        even,
        "{\"variation\":0,\"weight\":70000},{\"variation\":1,\"weight\":30000}",
    );
    match check_documents(&users, plan, &documents) {
        Err(AgreementError::Disagree(problems)) => {
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with("launchdarkly: all rollout flags")),
                "{problems:?}"
            );
            assert!(
                problems.iter().all(|p| p.starts_with("launchdarkly: ")),
                "{problems:?}"
            );
        }
        other => panic!("expected a disagreement, got {other:?}"),
    }
}

#[test]
fn a_missing_plan_is_where_launchdarkly_differs() {
    // Why every user has a plan: on a user of the three-clause rule without
    // one, `!(plan == "free")` holds in bunting and Unleash (`NOT_IN`), while
    // LaunchDarkly's negated clause does not match a missing attribute.
    use bunting_peer_bench::engines::{Bunting, LaunchDarkly, Peer, Unleash};
    use bunting_peer_bench::{render, spec};
    let flags = [spec::fixed_flag(0)];
    let user = spec::bench_user();
    let mut bunting_context = Bunting::context(&user).unwrap();
    assert!(bunting_context.remove("plan"));
    let mut unleash_context = Unleash::context(&user).unwrap();
    unleash_context.properties.as_mut().unwrap().remove("plan");
    let ld_context = launchdarkly_server_sdk_evaluation::ContextBuilder::new(user.key.as_str())
        .set_string("email", user.email.clone().unwrap())
        .set_string("country", user.country.clone().unwrap())
        .set_value(
            "app",
            launchdarkly_server_sdk_evaluation::AttributeValue::Object(
                [(
                    "version".to_string(),
                    user.app_version.clone().unwrap().into(),
                )]
                .into(),
            ),
        )
        .build()
        .unwrap();
    let bunting = Bunting::load(&render::bunting(&flags)).unwrap();
    let unleash = Unleash::load(&render::unleash(&flags)).unwrap();
    let launchdarkly = LaunchDarkly::load(&render::launchdarkly(&flags)).unwrap();
    assert_eq!(
        bunting.value("fixed-0", &bunting_context).as_deref(),
        Some("control")
    );
    assert_eq!(
        unleash.value("fixed-0", &unleash_context).as_deref(),
        Some("control")
    );
    assert_eq!(
        launchdarkly.value("fixed-0", &ld_context).as_deref(),
        Some("off")
    );
}

#[test]
fn team_flags_have_rules_of_their_own() {
    // Each team's rules are distinct texts, the users of team-1's domain
    // match only team-1's first rule, and no benchmark flag's.
    let documents = Documents::render(Plan {
        plain: 0,
        fixed: 0,
        rollout: 0,
        team: 3,
    });
    for t in 0..3 {
        assert!(
            documents
                .bunting
                .contains(&format!("@team-{t}.bunting.dev"))
        );
        assert!(documents.unleash.contains(&format!("\"Z{t}\"")));
        assert!(documents.launchdarkly.contains(&format!("\"Z{t}\"")));
    }
    let users = users(1000);
    let at_team_1 = |u: &&bunting_peer_bench::spec::User| {
        u.email
            .as_deref()
            .is_some_and(|e| e.ends_with("@team-1.bunting.dev"))
    };
    let members: Vec<_> = users.iter().filter(at_team_1).collect();
    assert!(members.len() >= 100, "{}", members.len());
    for u in &members {
        assert_eq!(team_reference_branch(u, 1, Some(1)), Branch::Internal);
        if u.department.as_deref() != Some("eng") && !STAFF.contains(&u.key.as_str()) {
            assert_ne!(reference_branch(u, 1), Branch::Internal, "{}", u.key);
            assert_ne!(
                team_reference_branch(u, 1, Some(2)),
                Branch::Internal,
                "{}",
                u.key
            );
        }
    }
}
