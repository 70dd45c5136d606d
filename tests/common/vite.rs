//! Real Vite: installed by `.ci/vite` at most once per test process, and a small page built
//! with it (an entry that imports a CSS file using an image, an image, and a module loaded
//! with a dynamic `import()`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Vite's command-line script (run it with `node`), installed by `.ci/vite` at most once per
/// test process.
pub fn vite_cli() -> PathBuf {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| super::ci_installed("vite", "for the bundler tests (Vite)"))
        .clone()
}

/// Bytes that stand for an image (Vite copies assets as they are; only the name matters).
fn image(seed: u8) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend((0..2048u32).map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed)));
    b
}

/// Writes the page's sources and `vite.config.mjs` into `dir`: `base` is the URL the output
/// is served under (STATIC_URL, plus where the output lands below STATIC_ROOT), `out_dir`
/// where it is built, relative to `dir`. `lazy` is the text of the dynamically imported
/// module (change it to get a new build with new names).
pub fn write_page(dir: &Path, base: &str, out_dir: &str, lazy: &str) {
    let w = |rel: &str, bytes: &[u8]| super::write_file(dir, rel, bytes);
    w(
        "src/main.js",
        br#"import './style.css'
import logoUrl from './logo.png'

document.querySelector('#app').innerHTML = `<img src="${logoUrl}" alt="logo">`
document.querySelector('#more').addEventListener('click', async () => {
  const { more } = await import('./lazy.js')
  more()
})
"#,
    );
    w(
        "src/style.css",
        b"body { background: url('./bg.png'); color: #123; }\n",
    );
    w("src/lazy.js", lazy.as_bytes());
    w("src/logo.png", &image(7));
    w("src/bg.png", &image(13));
    let config = format!(
        "export default {{\n  base: {base:?},\n  logLevel: 'warn',\n  build: {{\n    manifest: true,\n    \
         outDir: {out_dir:?},\n    emptyOutDir: true,\n    assetsInlineLimit: 0,\n    \
         rollupOptions: {{ input: 'src/main.js' }},\n  }},\n}}\n"
    );
    w("vite.config.mjs", config.as_bytes());
}

/// `vite build` in `dir`, which must succeed.
pub fn build(dir: &Path) {
    let out = Command::new("node")
        .arg(vite_cli())
        .arg("build")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "vite build in {} failed ({}):\n{}\n{}",
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Vite's `.vite/manifest.json` in `out_dir`.
pub fn manifest(out_dir: &Path) -> serde_json::Value {
    let path = out_dir.join(".vite/manifest.json");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file the chunk `key` needs, as Vite's manifest says (its `file`, and its `css`,
/// `assets`, `imports` and `dynamicImports`, followed), relative to the output directory.
pub fn files_of(manifest: &serde_json::Value, key: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut todo = vec![key.to_string()];
    while let Some(k) = todo.pop() {
        if !seen.insert(k.clone()) {
            continue;
        }
        let chunk = &manifest[&k];
        let strings = |field: &str| -> Vec<String> {
            chunk[field]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        out.insert(
            chunk["file"]
                .as_str()
                .unwrap_or_else(|| panic!("no chunk {k:?} in {manifest}"))
                .to_string(),
        );
        out.extend(strings("css"));
        out.extend(strings("assets"));
        todo.extend(strings("imports"));
        todo.extend(strings("dynamicImports"));
    }
    out
}
