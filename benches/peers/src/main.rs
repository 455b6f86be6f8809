//! The peer benchmark: checks that bunting, unleash-yggdrasil and
//! launchdarkly-server-sdk-evaluation agree on 1,000 users, then measures.
//!
//! Run: `cargo run --release -p bunting-peer-bench`.

use std::process::ExitCode;

use bunting_peer_bench::agreement::{self, Plan};
use bunting_peer_bench::spec;

fn main() -> ExitCode {
    let users = spec::users(1000);
    match agreement::check(
        &users,
        Plan {
            plain: 10,
            fixed: 500,
            rollout: 500,
        },
    ) {
        Ok(agreement) => {
            println!("{agreement}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
