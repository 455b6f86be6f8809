//! The peer benchmark: bunting against unleash-yggdrasil and
//! launchdarkly-server-sdk-evaluation on the workloads of
//! `core/benches/engine.rs`.
//!
//! It first checks that the engines agree on 1,000 varied users (and stops
//! if they do not), then times each scenario in interleaved rounds and
//! prints every engine's median and bunting's ratio to the best peer, and
//! finally the memory each engine holds for 1,000 flags.
//!
//! Run: `cargo run --release -p bunting-peer-bench` (`-- --quick` for a
//! short run).

use std::process::ExitCode;
use std::time::Duration;

use bunting_peer_bench::agreement::{self, Plan};
use bunting_peer_bench::engines::{self, Bunting, LaunchDarkly, NOW_MS, Peer, PeerError, Unleash};
use bunting_peer_bench::measure::{self, Batch, Settings, each, keep};
use bunting_peer_bench::render;
use bunting_peer_bench::spec::{self, FlagSpec};
use launchdarkly_server_sdk_evaluation as ld;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// A global allocator that counts the bytes held, only while counting is
/// switched on, so the timed runs pay no more than one relaxed load per
/// allocation.
#[allow(unsafe_code)]
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

    /// Delegates to [`System`], counting while [`measure`] runs.
    pub(crate) struct Counting;

    static ON: AtomicBool = AtomicBool::new(false);
    static HELD: AtomicIsize = AtomicIsize::new(0);

    fn count(bytes: usize, sign: isize) {
        if ON.load(Relaxed) {
            HELD.fetch_add(sign * bytes as isize, Relaxed);
        }
    }

    // SAFETY: every method forwards its arguments unchanged to `System`,
    // which upholds `GlobalAlloc`'s contract; counting touches only atomics.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
            let ptr = unsafe { System.alloc(layout) };
            if !ptr.is_null() {
                count(layout.size(), 1);
            }
            ptr
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: as for `alloc`.
            let ptr = unsafe { System.alloc_zeroed(layout) };
            if !ptr.is_null() {
                count(layout.size(), 1);
            }
            ptr
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` was allocated by `System` (through this
            // allocator) with `layout`, as the caller guarantees.
            unsafe { System.dealloc(ptr, layout) };
            count(layout.size(), -1);
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: as for `dealloc`, and `new_size` is valid per the caller.
            let new = unsafe { System.realloc(ptr, layout, new_size) };
            if !new.is_null() {
                count(new_size, 1);
                count(layout.size(), -1);
            }
            new
        }
    }

    /// Runs `f` and returns its result with the net bytes allocated during
    /// it (what the result still holds once `f`'s temporaries are freed).
    pub(crate) fn measure<R>(f: impl FnOnce() -> R) -> (R, isize) {
        let before = HELD.load(Relaxed);
        ON.store(true, Relaxed);
        let result = f();
        ON.store(false, Relaxed);
        (result, HELD.load(Relaxed) - before)
    }
}

/// The engines' names, in the order of every row.
const NAMES: [&str; 3] = [Bunting::NAME, Unleash::NAME, LaunchDarkly::NAME];

/// What each engine does beyond the common work, printed under the table.
const BEYOND: &str = "\
What each engine does beyond the common work (same flags, same answers):
  bunting            load: parses the snapshot, validates every flag, rule and segment (reporting all
                     problems), recomputes and verifies the SHA-256 checksum over a canonical
                     re-serialization, compiles the rule language. evaluate: returns the full OFREP result
                     (value, variant, reason, rule id, metadata), borrowed from the engine.
  unleash-yggdrasil  load: deserializes the features, rewrites every strategy into its rule language and
                     compiles it (pest grammar) into closures, keeps a copy of the features. evaluate
                     (get_variant): enriches the context, evaluates the strategies in order (each a
                     flexibleRollout at 100 %), picks the variant by MurmurHash3 of group id and user id,
                     returns an owned variant (name and payload cloned). All flags: one get_variant per flag (its resolve_all
                     would also compute is_enabled separately).
  launchdarkly       load: deserializes only (attribute references are parsed; nothing else is checked or
                     compiled). evaluate: returns the value with a reason; the Store trait hands out
                     owned copies, so every segmentMatch clones the segment; no metadata. All flags: one
                     evaluate per flag of the store (the evaluation crate has no bulk call).";

struct Args {
    quick: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { quick: false };
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => args.quick = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?}\nusage: bunting-peer-bench [--quick]"
                ));
            }
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    match parse_args().and_then(|args| run(&args).map_err(|e| e.to_string())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The three engines loaded with the same flags.
struct Loaded {
    bunting: Bunting,
    unleash: Unleash,
    launchdarkly: LaunchDarkly,
}

fn load_all(flags: &[FlagSpec]) -> Result<Loaded, PeerError> {
    Ok(Loaded {
        bunting: Bunting::load(&render::bunting(flags))?,
        unleash: Unleash::load(&render::unleash(flags))?,
        launchdarkly: LaunchDarkly::load(&render::launchdarkly(flags))?,
    })
}

/// One row of the results.
struct Row {
    scenario: &'static str,
    medians: Vec<f64>,
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let settings = if args.quick {
        Settings {
            rounds: 7,
            batch: Duration::from_millis(3),
        }
    } else {
        Settings {
            rounds: 31,
            batch: Duration::from_millis(20),
        }
    };

    let users = spec::users(1000);
    let plan = Plan {
        plain: 10,
        fixed: 500,
        rollout: 500,
        team: 500,
    };
    println!("{}", agreement::check(&users, plan)?);

    let user = spec::bench_user();
    let b_ctx = engines::bunting_context(&user);
    let u_ctx = engines::unleash_context(&user);
    let l_ctx = engines::launchdarkly_context(&user)?;
    let mut rows = Vec::new();

    // One flag without rules, and one with the three-clause rule and the
    // 50/50 rollout, each in a two-flag snapshot.
    let small = load_all(&[spec::plain_flag(0), spec::rollout_flag(0)])?;
    for (scenario, key) in [
        ("one flag without rules", "plain-0"),
        ("three-clause rule + 50/50 rollout", "flag-0"),
    ] {
        let mut batches: Vec<Batch<'_>> = vec![
            each(|| small.bunting.0.evaluate(key, &b_ctx, NOW_MS)),
            each(|| small.unleash.0.get_variant(key, &u_ctx, &None)),
            each(|| {
                let store = &small.launchdarkly;
                store
                    .flags
                    .get(key)
                    .map(|flag| ld::evaluate(store, flag, &l_ctx, None))
            }),
        ];
        rows.push(Row {
            scenario,
            medians: measure::interleaved(&mut batches, settings),
        });
    }

    // Evaluate all of 500 flags, into one result per flag: the benchmark
    // flags (8 distinct conditions in all: bunting evaluates a condition
    // shared by several flags once per evaluate-all, the peers have no such
    // memo), then flags whose rules have their own text (1,000 distinct).
    for (scenario, flags) in [
        ("evaluate all, 500 flags", spec::rollout_flags(500)),
        (
            "evaluate all, 500 flags, distinct rules",
            spec::team_flags(500),
        ),
    ] {
        let keys: Vec<String> = flags.iter().map(|f| f.key().to_string()).collect();
        let loaded = load_all(&flags)?;
        let mut batches: Vec<Batch<'_>> = vec![
            each(|| loaded.bunting.0.evaluate_all(&b_ctx, NOW_MS)),
            each(|| {
                keys.iter()
                    .map(|key| loaded.unleash.0.get_variant(key, &u_ctx, &None))
                    .collect::<Vec<_>>()
            }),
            each(|| {
                let store = &loaded.launchdarkly;
                store
                    .flags
                    .values()
                    .map(|flag| ld::evaluate(store, flag, &l_ctx, None))
                    .collect::<Vec<_>>()
            }),
        ];
        rows.push(Row {
            scenario,
            medians: measure::interleaved(&mut batches, settings),
        });
    }

    // Load 1,000 flags from each engine's native JSON.
    let thousand = spec::rollout_flags(1000);
    let docs = [
        render::bunting(&thousand),
        render::unleash(&thousand),
        render::launchdarkly(&thousand),
    ];
    let load_settings = Settings {
        rounds: settings.rounds,
        batch: settings.batch.max(Duration::from_millis(30)),
    };
    let mut batches: Vec<Batch<'_>> = vec![
        keep(|| Bunting::load(&docs[0]).expect("bunting loads")),
        keep(|| Unleash::load(&docs[1]).expect("unleash loads")),
        keep(|| LaunchDarkly::load(&docs[2]).expect("launchdarkly loads")),
    ];
    rows.push(Row {
        scenario: "load 1,000 flags from JSON",
        medians: measure::interleaved(&mut batches, load_settings),
    });
    drop(batches);

    // Build a context from the same attributes: bunting's own `Context`
    // (what the rows above evaluate), then its JSON form for comparison.
    let mut batches: Vec<Batch<'_>> = vec![
        each(|| engines::bunting_context(&user)),
        each(|| engines::unleash_context(&user)),
        each(|| engines::launchdarkly_context(&user).expect("valid context")),
    ];
    rows.push(Row {
        scenario: "build a context",
        medians: measure::interleaved(&mut batches, settings),
    });
    drop(batches);
    let mut batches: Vec<Batch<'_>> = vec![
        each(|| engines::bunting_json_context(&user)),
        each(|| engines::unleash_context(&user)),
        each(|| engines::launchdarkly_context(&user).expect("valid context")),
    ];
    rows.push(Row {
        scenario: "build a context (bunting: as JSON)",
        medians: measure::interleaved(&mut batches, settings),
    });
    drop(batches);

    print_table(&rows, settings);
    println!("{BEYOND}\n");
    print_memory(&docs)?;
    Ok(())
}

fn print_table(rows: &[Row], settings: Settings) {
    println!(
        "\nMedian time per operation ({} interleaved rounds of ~{} ms per engine):\n",
        settings.rounds,
        settings.batch.as_millis()
    );
    println!(
        "| scenario | {} | {} | {} | bunting / best peer |",
        NAMES[0], NAMES[1], NAMES[2]
    );
    println!("|---|---|---|---|---|");
    for row in rows {
        let (best, best_ns) = row.medians[1..]
            .iter()
            .enumerate()
            .map(|(i, ns)| (NAMES[i + 1], *ns))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("two peers");
        let cells: Vec<String> = row.medians.iter().map(|ns| measure::human(*ns)).collect();
        println!(
            "| {} | {} | {} | {} | {:.2}× (of {best}) |",
            row.scenario,
            cells[0],
            cells[1],
            cells[2],
            row.medians[0] / best_ns
        );
    }
    println!();
}

fn print_memory(docs: &[String; 3]) -> Result<(), PeerError> {
    let (bunting, b) = counting::measure(|| Bunting::load(&docs[0]));
    let (unleash, u) = counting::measure(|| Unleash::load(&docs[1]));
    let (launchdarkly, l) = counting::measure(|| LaunchDarkly::load(&docs[2]));
    let (_bunting, _unleash, _launchdarkly) = (bunting?, unleash?, launchdarkly?);
    let kib = |bytes: usize| bytes as f64 / 1024.0;
    println!("Memory held for 1,000 flags (heap bytes allocated by the load and not freed):\n");
    println!("| engine | held | its JSON document | held / bunting snapshot JSON |");
    println!("|---|---|---|---|");
    for (name, held, doc) in [
        (NAMES[0], b, &docs[0]),
        (NAMES[1], u, &docs[1]),
        (NAMES[2], l, &docs[2]),
    ] {
        let held = held.max(0) as usize;
        println!(
            "| {name} | {:.0} KiB | {:.0} KiB | {:.2} |",
            kib(held),
            kib(doc.len()),
            held as f64 / docs[0].len() as f64
        );
    }
    Ok(())
}
