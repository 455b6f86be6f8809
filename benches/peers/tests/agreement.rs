//! The agreement check of the peer benchmark, run by `cargo test --workspace`:
//! bunting, unleash-yggdrasil and launchdarkly-server-sdk-evaluation give
//! the same answers to 1,000 varied users on flags rendered from one
//! description.

use bunting_peer_bench::agreement::{Plan, check};
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
