//! Builds the WebAssembly components the tests load: the first-party plugins (`plugins/`), the
//! misbehaving guests (`tests/guests/`) and the third-party example (`examples/`), all into `plugins/target` so they share compiled
//! dependencies. Their directory is exposed to the tests as `WEFT_WASM_DIR`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let tests = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = tests.parent().unwrap().to_owned();
    let target_dir = root.join("plugins/target");

    for input in ["wit", "sdk/src", "sdk/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }
    ensure_wasm_target();
    for workspace in [root.join("plugins"), tests.join("guests")] {
        watch_workspace(&workspace);
        build(&workspace, &target_dir);
    }
    // The third-party example is its own package, as an outside author's would be.
    let example = root.join("examples/acme-helpdesk-connector");
    for file in ["Cargo.toml", "src"] {
        println!("cargo:rerun-if-changed={}", example.join(file).display());
    }
    build(&example, &target_dir);
    println!(
        "cargo:rustc-env=WEFT_WASM_DIR={}",
        target_dir.join("wasm32-wasip2/release").display()
    );
}

/// Watches a workspace's manifest, lockfile and member crates, but not its `target/`.
fn watch_workspace(workspace: &Path) {
    for file in ["Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", workspace.join(file).display());
    }
    for entry in std::fs::read_dir(workspace).unwrap().flatten() {
        let path = entry.path();
        if path.join("Cargo.toml").exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

fn build(workspace: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(target_dir);
    // What cargo sets for this build script must not leak into the nested build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MANIFEST_DIR",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for {}: {e}", workspace.display()));
    if !status.success() {
        panic!(
            "building the WebAssembly components in {} failed (see above). \
             If the target is missing: rustup target add wasm32-wasip2",
            workspace.display()
        );
    }
}

/// Installs the wasm32-wasip2 standard library with rustup when this toolchain lacks it, so the
/// test command works on a fresh machine.
fn ensure_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .expect("rustc --print sysroot");
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib/wasm32-wasip2").exists() {
        return;
    }
    println!("cargo:warning=installing the wasm32-wasip2 target with rustup");
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        panic!(
            "the wasm32-wasip2 target is missing and `rustup target add wasm32-wasip2` failed; run it by hand"
        );
    }
}
