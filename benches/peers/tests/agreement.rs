//! The agreement check of the peer benchmark, run by `cargo test --workspace`:
//! bunting, unleash-yggdrasil and launchdarkly-server-sdk-evaluation give
//! the same answers to 1,000 varied users on flags rendered from one
//! description.

use bunting_peer_bench::agreement::{AgreementError, Documents, Plan, check, check_documents};
use bunting_peer_bench::spec::{Branch, reference_branch, users};

#[test]
fn all_engines_agree_on_a_thousand_users() {
    let users = users(1000);
    // Every semver threshold (i % 7) appears among the targeted flags.
    let plan = Plan {
        plain: 2,
        fixed: 7,
        rollout: 14,
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
    let exact = (plan.plain + plan.fixed) * users.len() + plan.rollout * internal;
    for report in &agreement.engines {
        assert_eq!(report.exact, exact, "{}", report.engine);
        assert_eq!(
            report.launch.users + report.fallthrough.users,
            plan.rollout * (users.len() - internal)
        );
        assert!(
            report.launch.users > 500 && report.fallthrough.users > 500,
            "{report:?}"
        );
    }
}

#[test]
fn the_users_take_every_branch_of_every_threshold() {
    let users = users(1000);
    for minor in 0..7 {
        for branch in [Branch::Internal, Branch::Launch, Branch::Fallthrough] {
            let n = users
                .iter()
                .filter(|u| reference_branch(u, minor) == branch)
                .count();
            assert!(n >= 50, "only {n} users take {branch:?} at 2.{minor}.0");
        }
    }
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
