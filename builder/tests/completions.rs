//! `nodeimg completions` and `nodeimg man`: the generated bash completion loads in a real bash
//! and completes commands and options; the man pages render with man(1).

use std::process::Command;

const NODEIMG: &str = env!("CARGO_BIN_EXE_nodeimg");

/// `true` if `tool` is on PATH; otherwise a loud skip, or a failure under
/// `NODEIMG_REQUIRE_TOOLS=1` (as CI runs: scripts/setup.sh installs bash-completion and man-db).
fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("NODEIMG_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "`{tool}` is not installed and NODEIMG_REQUIRE_TOOLS=1"
        );
        eprintln!("\n!!!!! SKIP: `{tool}` is not installed !!!!!\n");
    }
    found
}

/// Loads the completion script into bash and returns what it completes for `words` (the
/// last word is the one being completed).
fn complete(words: &[&str]) -> Vec<String> {
    let script = Command::new(NODEIMG)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(script.status.success(), "{script:?}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nodeimg.bash");
    std::fs::write(&path, &script.stdout).unwrap();
    let line = words.join(" ");
    let cword = words.len() - 1;
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let prog = format!(
        "source '{}' || exit 9\n\
         COMP_WORDS=({}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}\n\
         _nodeimg nodeimg '{}' '{}' || exit 8\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path.display(),
        quoted.join(" "),
        words[cword],
        if cword > 0 { words[cword - 1] } else { "" }
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &prog])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash could not load or run the completion ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_commands_and_options() {
    if !have("bash") {
        return;
    }
    assert_eq!(complete(&["nodeimg", "bu"]), vec!["build"]);
    let m = complete(&["nodeimg", "measure", ""]);
    for want in ["uki", "disk", "snp", "tdx"] {
        assert!(m.iter().any(|c| c == want), "measure: {m:?}");
    }
    let b = complete(&["nodeimg", "build", "--ca"]);
    assert_eq!(b, vec!["--cache-dir"]);
}

#[test]
fn other_shells_get_scripts_too() {
    for (shell, marker) in [("zsh", "#compdef nodeimg"), ("fish", "complete -c nodeimg")] {
        let out = Command::new(NODEIMG)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell}: {text}");
        assert!(text.contains("cache-dir"), "{shell}");
    }
    let bad = Command::new(NODEIMG)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn man_pages_render() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(NODEIMG)
        .arg("man")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for page in [
        "nodeimg.1",
        "nodeimg-build.1",
        "nodeimg-measure-snp.1",
        "nodeimg-man.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page} missing");
    }
    // Not into something that is not a directory.
    let file = dir.path().join("nodeimg.1");
    let out = Command::new(NODEIMG)
        .arg("man")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a directory"));
    if !have("man") {
        return;
    }
    let r = Command::new("man")
        .arg("-l")
        .arg(dir.path().join("nodeimg-build.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    let text = String::from_utf8_lossy(&r.stdout);
    assert!(text.contains("nodeimg-build"), "{text}");
    assert!(text.contains("--cache-dir"), "{text}");
    assert!(text.contains("--no-cache"), "{text}");
}
