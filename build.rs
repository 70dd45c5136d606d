//! A second build of Google's brotli encoder for CPUs with x86-64-v3 (AVX2, BMI2, FMA…).
//!
//! Collect spends about 90 % of its CPU in brotli quality 11. The same C sources built with
//! `-march=x86-64-v3` take 2–3 % less time here (README "Compression"), and the binary must still
//! run on any x86-64, so this build is linked beside compu-brotli-sys's baseline one and
//! `collect::google_brotli` picks one at run time. Every exported symbol of the second build is
//! renamed `staticd_v3_*` (binutils' `nm` and `objcopy`) so the two cannot collide.
//! `-ffp-contract=off` keeps the float arithmetic of the cost model exactly the baseline's (no
//! fused multiply-adds), so both builds emit the same bytes as Python's `brotli` module
//! (a unit test compares them).
//!
//! compu-brotli-sys declares no `links`, so its sources are found in Cargo's registry by the
//! version Cargo.lock names. Whatever is missing (another architecture, a vendored tree, no
//! binutils), the build goes on without this variant (with a warning) and staticd uses the
//! baseline encoder only.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

/// The prefix of every symbol of the x86-64-v3 build.
const PREFIX: &str = "staticd_v3_";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(staticd_brotli_v3)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=Cargo.lock");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch != "x86_64" || os != "linux" {
        return;
    }
    match build_v3() {
        Ok(()) => println!("cargo::rustc-cfg=staticd_brotli_v3"),
        Err(e) => println!("cargo::warning=brotli x86-64-v3 build skipped (baseline only): {e}"),
    }
}

fn build_v3() -> Result<(), String> {
    let src = brotli_sources()?;
    let out = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let mut build = cc::Build::new();
    build
        .include(src.join("include"))
        .warnings(false)
        .opt_level(3)
        .flag("-march=x86-64-v3")
        .flag("-ffp-contract=off");
    for dir in ["common", "enc"] {
        let mut files: Vec<PathBuf> = fs::read_dir(src.join(dir))
            .map_err(|e| format!("{}: {e}", src.join(dir).display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "c"))
            .collect();
        files.sort();
        build.files(files);
    }
    let objects = build
        .try_compile_intermediates()
        .map_err(|e| e.to_string())?;
    let renames = out.join("brotli_v3.syms");
    fs::write(&renames, rename_map(&objects)?).map_err(|e| e.to_string())?;
    for obj in &objects {
        run(Command::new("objcopy")
            .arg(format!("--redefine-syms={}", renames.display()))
            .arg(obj))?;
    }
    let lib = out.join("libstaticd_brotli_v3.a");
    let _ = fs::remove_file(&lib);
    run(Command::new("ar").arg("crs").arg(&lib).args(&objects))?;
    println!("cargo::rustc-link-search=native={}", out.display());
    println!("cargo::rustc-link-lib=static=staticd_brotli_v3");
    Ok(())
}

/// `objcopy --redefine-syms` lines renaming every symbol the objects define globally.
fn rename_map(objects: &[PathBuf]) -> Result<String, String> {
    let listing = run(Command::new("nm")
        .args(["--defined-only", "--extern-only", "--format=posix"])
        .args(objects))?;
    let mut names: Vec<&str> = listing
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (name, kind) = (f.next()?, f.next()?);
            (!name.ends_with(':') && kind.chars().all(|c| c.is_ascii_alphabetic())).then_some(name)
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    if !names.contains(&"BrotliEncoderCompressStream") {
        return Err("nm listed no BrotliEncoderCompressStream".into());
    }
    Ok(names.iter().map(|n| format!("{n} {PREFIX}{n}\n")).collect())
}

/// `brotli/c` of the compu-brotli-sys that Cargo.lock pins, in Cargo's registry.
fn brotli_sources() -> Result<PathBuf, String> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let lock = fs::read_to_string(manifest.join("Cargo.lock")).map_err(|e| e.to_string())?;
    let version =
        locked_version(&lock, "compu-brotli-sys").ok_or("compu-brotli-sys is not in Cargo.lock")?;
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let registries = home.join("registry/src");
    let name = format!("compu-brotli-sys-{version}");
    fs::read_dir(&registries)
        .map_err(|e| format!("{}: {e}", registries.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(&name).join("brotli/c"))
        .find(|p| p.join("enc/encode.c").is_file())
        .ok_or_else(|| format!("{name} not found under {}", registries.display()))
}

/// The version of package `name` in a Cargo.lock.
fn locked_version<'a>(lock: &'a str, name: &str) -> Option<&'a str> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    lines.find(|l| l.trim() == wanted)?;
    let v = lines.next()?.trim().strip_prefix("version = \"")?;
    v.strip_suffix('"')
}

/// Runs `cmd`, its stdout on success.
fn run(cmd: &mut Command) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
