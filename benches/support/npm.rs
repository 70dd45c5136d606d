//! Packages from the registries, fetched once with their own clients and kept unpacked under
//! `target/bench-corpus/packages/`: npm packages with `npm pack`, Python distributions with
//! `pip download` (a wheel is a zip).

use super::checked_output;
use super::corpus::bench_corpus_root;
use std::path::PathBuf;
use std::process::Command;

/// `<root>/npm/<pkg>@<ver>/package`, fetched and unpacked on first use.
pub fn npm(pkg: &str, ver: &str) -> Result<PathBuf, String> {
    let dest = bench_corpus_root()
        .join("packages/npm")
        .join(format!("{}@{ver}", pkg.replace('/', "+")));
    let stamp = dest.join(".unpacked");
    if !stamp.exists() {
        eprintln!("bench: fetching {pkg}@{ver}");
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
        let out = checked_output(
            Command::new("npm")
                .args([
                    "pack",
                    "--silent",
                    &format!("{pkg}@{ver}"),
                    "--pack-destination",
                ])
                .arg(&dest)
                .current_dir(&dest),
            &format!("npm pack {pkg}@{ver}"),
        )?;
        let tgz = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .map(|s| s.trim().to_string())
            .ok_or("npm pack printed no file name")?;
        checked_output(
            Command::new("tar")
                .arg("xzf")
                .arg(dest.join(&tgz))
                .arg("-C")
                .arg(&dest),
            &format!("tar xzf {tgz}"),
        )?;
        std::fs::remove_file(dest.join(&tgz)).ok();
        std::fs::write(&stamp, "").map_err(|e| e.to_string())?;
    }
    Ok(dest.join("package"))
}

/// `<root>/pypi/<dist>-<ver>/`: the wheel of `dist==ver`, unzipped, fetched on first use.
pub fn pypi(dist: &str, ver: &str) -> Result<PathBuf, String> {
    let dest = bench_corpus_root()
        .join("packages/pypi")
        .join(format!("{dist}-{ver}"));
    let stamp = dest.join(".unpacked");
    if !stamp.exists() {
        eprintln!("bench: fetching {dist}=={ver}");
        let _ = std::fs::remove_dir_all(&dest);
        let wheels = dest.join(".wheel");
        std::fs::create_dir_all(&wheels).map_err(|e| e.to_string())?;
        checked_output(
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--only-binary=:all:",
                ])
                // The wheel is the same for every Python 3; newer ones may require a newer
                // interpreter than this machine's to install, not to unpack.
                .args(["--python-version", "3.12"])
                .arg(format!("{dist}=={ver}"))
                .arg("-d")
                .arg(&wheels),
            &format!("pip download {dist}=={ver}"),
        )?;
        let wheel = std::fs::read_dir(&wheels)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "whl"))
            .ok_or("pip downloaded no wheel")?;
        checked_output(
            Command::new("python3")
                .args(["-m", "zipfile", "-e"])
                .arg(&wheel)
                .arg(&dest),
            "unzip the wheel",
        )?;
        std::fs::remove_dir_all(&wheels).ok();
        std::fs::write(&stamp, "").map_err(|e| e.to_string())?;
    }
    Ok(dest)
}
