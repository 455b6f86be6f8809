//! Rebuilds the crate when the web console's build changes, so the binary
//! embeds the new `console/dist` (src/console.rs). The embedding already
//! tracks each embedded file; this catches a build that appears where
//! there was none, and files added beside the old ones.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // A path that does not exist would rerun this script at every build:
    // watch the nearest folder that does (the console's sources until it
    // is built).
    let watched = ["../console/dist", "../console"]
        .into_iter()
        .find(|dir| Path::new(dir).is_dir());
    if let Some(dir) = watched {
        println!("cargo:rerun-if-changed={dir}");
    }
}
