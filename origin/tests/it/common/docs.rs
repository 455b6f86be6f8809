//! Examples of the docs run as written: the shell blocks of a section of a
//! Markdown file, and `sh` to run them.

/// The shell blocks (info string, code) of section `heading` of `doc`.
pub(crate) fn shell_blocks(doc: &str, heading: &str) -> Vec<(String, String)> {
    let start = doc.find(&format!("\n{heading}\n")).expect("the section");
    let section = &doc[start + 1..];
    let end = section[heading.len()..]
        .find("\n## ")
        .map_or(section.len(), |e| e + heading.len());
    let mut blocks = Vec::new();
    let mut lines = section[..end].lines();
    while let Some(line) = lines.next() {
        if let Some(info) = line.strip_prefix("```sh") {
            let code: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            blocks.push((info.trim().to_string(), code.join("\n")));
        }
    }
    blocks
}

/// Runs `code` with `sh -eu` in `dir` with `env`: (success, stdout).
pub(crate) async fn sh(dir: &std::path::Path, code: &str, env: &[(&str, &str)]) -> (bool, String) {
    let out = tokio::process::Command::new("sh")
        .args(["-euc", code])
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!(
            "{code}\n--- stdout\n{stdout}--- stderr\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (out.status.success(), stdout)
}
