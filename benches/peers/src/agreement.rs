//! Checks that the engines give the same answers before anything is timed,
//! so a speed-up can never come from a wrong answer.
//!
//! Rule matching is compared exactly: on flags without rollouts (`plain-*`,
//! `fixed-*`) every engine must serve, for every user, the variant the
//! reference ([`team_reference_branch`]) says. Rollouts cannot be compared user
//! by user, because each engine buckets with its own hash (bunting SipHash
//! of its salt and key, Unleash MurmurHash3 of group id and user id,
//! LaunchDarkly SHA-1 of key, salt and context key). On the benchmark flags
//! (`flag-*`) every engine must serve `treatment` to every user of the first
//! rule, only `control` or `treatment` to the others, and a share of
//! `treatment` within five standard deviations of the configured split
//! (50 % on the three-clause rule, 10 % on the fallthrough) per flag and
//! over all flags.

use std::fmt;

use crate::engines::{Bunting, LaunchDarkly, Peer, PeerError, Unleash};
use crate::render;
use crate::spec::{
    self, Branch, FlagSpec, Serving, User, fixed_variant, team_reference_branch, treatment_share,
};

/// The flags an agreement check runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Flags without rules (`plain-*`).
    pub plain: usize,
    /// Targeted flags serving fixed variants (`fixed-*`).
    pub fixed: usize,
    /// Benchmark flags with rollouts (`flag-*`).
    pub rollout: usize,
    /// Flags with rollouts and rules of their own text (`team-*`).
    pub team: usize,
}

impl Plan {
    /// The flags of this plan.
    pub fn flags(&self) -> Vec<FlagSpec> {
        let plain = (0..self.plain).map(spec::plain_flag);
        let fixed = (0..self.fixed).map(spec::fixed_flag);
        plain
            .chain(fixed)
            .chain(spec::rollout_flags(self.rollout))
            .chain(spec::team_flags(self.team))
            .collect()
    }
}

/// Treatment counts on one branch of the rollout flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Split {
    /// Users served `treatment`.
    pub treatment: usize,
    /// Users on the branch.
    pub users: usize,
}

impl Split {
    /// Whether the share of `treatment` is within five standard deviations
    /// of `share` (plus one user for rounding).
    pub fn plausible(&self, share: f64) -> bool {
        let n = self.users as f64;
        let deviation = (self.treatment as f64 - n * share).abs();
        deviation <= 5.0 * (n * share * (1.0 - share)).sqrt() + 1.0
    }

    /// The share of `treatment` (0 with no users).
    pub fn share(&self) -> f64 {
        if self.users == 0 {
            0.0
        } else {
            self.treatment as f64 / self.users as f64
        }
    }
}

/// What one engine answered.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineReport {
    /// The engine.
    pub engine: &'static str,
    /// Answers compared exactly with the reference (all equal when the
    /// check passes).
    pub exact: usize,
    /// Rollout flags, the three-clause rule (50 % treatment configured).
    pub launch: Split,
    /// Rollout flags, fallthrough (10 % treatment configured).
    pub fallthrough: Split,
}

/// The outcome of a passed check.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// Users compared.
    pub users: usize,
    /// The flags compared.
    pub plan: Plan,
    /// One report per engine.
    pub engines: Vec<EngineReport>,
}

impl fmt::Display for Agreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Plan {
            plain,
            fixed,
            rollout,
            team,
        } = self.plan;
        writeln!(
            f,
            "agreement: {} users × ({plain} flags without rules + {fixed} targeted flags without rollout \
             + {rollout} benchmark flags with rollouts + {team} with rollouts and rules of their own)",
            self.users
        )?;
        for report in &self.engines {
            writeln!(
                f,
                "  {:<18} {} answers equal to the reference; rollouts: treatment {:.1} % on the 50/50 rule \
                 ({} users), {:.1} % on the 90/10 fallthrough ({} users)",
                report.engine,
                report.exact,
                100.0 * report.launch.share(),
                report.launch.users,
                100.0 * report.fallthrough.share(),
                report.fallthrough.users
            )?;
        }
        Ok(())
    }
}

/// Why the engines do not agree.
#[derive(Debug, thiserror::Error)]
pub enum AgreementError {
    /// An engine refused its document or a context.
    #[error(transparent)]
    Engine(#[from] PeerError),
    /// Answers differ; the first problems are listed.
    #[error("the engines disagree:\n{}", .0.join("\n"))]
    Disagree(Vec<String>),
}

/// How many problems are listed at most.
const MAX_PROBLEMS: usize = 20;

/// The flags of a plan in each engine's native document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documents {
    /// The bunting snapshot.
    pub bunting: String,
    /// Unleash client features.
    pub unleash: String,
    /// LaunchDarkly flag and segment data.
    pub launchdarkly: String,
}

impl Documents {
    /// Renders the flags of `plan` for every engine.
    pub fn render(plan: Plan) -> Documents {
        let flags = plan.flags();
        Documents {
            bunting: render::bunting(&flags),
            unleash: render::unleash(&flags),
            launchdarkly: render::launchdarkly(&flags),
        }
    }
}

/// Renders the flags of `plan` for every engine and compares the answers
/// for `users`.
pub fn check(users: &[User], plan: Plan) -> Result<Agreement, AgreementError> {
    check_documents(users, plan, &Documents::render(plan))
}

/// Compares the answers of the engines loaded from `documents`, which
/// must hold the flags of `plan`, for `users`.
pub fn check_documents(
    users: &[User],
    plan: Plan,
    documents: &Documents,
) -> Result<Agreement, AgreementError> {
    let flags = plan.flags();
    let mut problems = Vec::new();
    let engines = vec![
        run::<Bunting>(&documents.bunting, &flags, users, &mut problems)?,
        run::<Unleash>(&documents.unleash, &flags, users, &mut problems)?,
        run::<LaunchDarkly>(&documents.launchdarkly, &flags, users, &mut problems)?,
    ];
    if problems.is_empty() {
        Ok(Agreement {
            users: users.len(),
            plan,
            engines,
        })
    } else {
        problems.truncate(MAX_PROBLEMS);
        Err(AgreementError::Disagree(problems))
    }
}

fn run<P: Peer>(
    json: &str,
    flags: &[FlagSpec],
    users: &[User],
    problems: &mut Vec<String>,
) -> Result<EngineReport, PeerError> {
    let engine = P::load(json)?;
    let contexts = users
        .iter()
        .map(P::context)
        .collect::<Result<Vec<_>, _>>()?;
    let mut report = EngineReport {
        engine: P::NAME,
        exact: 0,
        launch: Split::default(),
        fallthrough: Split::default(),
    };
    let mut problem = |message: String| {
        if problems.len() < MAX_PROBLEMS {
            problems.push(format!("{}: {message}", P::NAME));
        }
    };
    for flag in flags {
        let mut launch = Split::default();
        let mut fallthrough = Split::default();
        for (user, context) in users.iter().zip(&contexts) {
            let got = engine.value(flag.key(), context);
            let got = got.as_deref();
            let branch = match flag {
                FlagSpec::Plain { .. } => None,
                FlagSpec::Targeted { minor, team, .. } => {
                    Some(team_reference_branch(user, *minor, *team))
                }
            };
            let expected = match (flag, branch) {
                (FlagSpec::Plain { .. }, _) => Some("control"),
                (
                    FlagSpec::Targeted {
                        serving: Serving::Fixed,
                        ..
                    },
                    Some(branch),
                ) => Some(fixed_variant(branch)),
                (_, Some(Branch::Internal)) => Some("treatment"),
                _ => None,
            };
            if let Some(expected) = expected {
                if got == Some(expected) {
                    report.exact += 1;
                } else {
                    problem(format!(
                        "{} for {}: {got:?}, expected {expected:?}",
                        flag.key(),
                        user.key
                    ));
                }
                continue;
            }
            let split = if branch == Some(Branch::Launch) {
                &mut launch
            } else {
                &mut fallthrough
            };
            split.users += 1;
            match got {
                Some("treatment") => split.treatment += 1,
                Some("control") => {}
                other => problem(format!(
                    "{} for {}: {other:?}, expected control or treatment",
                    flag.key(),
                    user.key
                )),
            }
        }
        for (split, branch) in [(launch, Branch::Launch), (fallthrough, Branch::Fallthrough)] {
            if !split.plausible(treatment_share(branch)) {
                problem(format!(
                    "{}: {split:?} on {branch:?} is implausible",
                    flag.key()
                ));
            }
        }
        report.launch.users += launch.users;
        report.launch.treatment += launch.treatment;
        report.fallthrough.users += fallthrough.users;
        report.fallthrough.treatment += fallthrough.treatment;
    }
    for (split, branch) in [
        (report.launch, Branch::Launch),
        (report.fallthrough, Branch::Fallthrough),
    ] {
        if !split.plausible(treatment_share(branch)) {
            problem(format!(
                "all rollout flags: {split:?} on {branch:?} is implausible"
            ));
        }
    }
    Ok(report)
}
