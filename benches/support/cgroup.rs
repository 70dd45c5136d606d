//! An equal CPU budget for each server: a CFS bandwidth cap (cgroup v2 `cpu.max`, or v1
//! `cpu.cfs_quota_us`) on its processes, so that the server, not the one-core load generator,
//! is what runs out. Needs root and a mounted cpu controller; `None` otherwise (the caller
//! says so and measures without).

use std::path::{Path, PathBuf};

/// One cgroup of the cpu controller with a quota; removed on drop (its processes move back
/// to the root group first).
pub struct CpuCap {
    dir: PathBuf,
    root: PathBuf,
    pub percent: u32,
}

/// The quota's period: short, so that a throttled server stalls for at most a few ms.
const PERIOD_US: u32 = 10_000;

impl CpuCap {
    /// A cgroup named `name` limited to `percent` % of one core.
    pub fn new(name: &str, percent: u32) -> Result<Self, String> {
        let quota = PERIOD_US * percent / 100;
        let v2 = Path::new("/sys/fs/cgroup");
        let v2_has_cpu = std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "cpu"));
        let (root, dir) = if v2_has_cpu {
            let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+cpu");
            (v2.to_path_buf(), v2.join(name))
        } else {
            let v1 = Path::new("/sys/fs/cgroup/cpu");
            if !v1.join("cpu.cfs_quota_us").exists() {
                return Err("no cgroup cpu controller mounted".into());
            }
            (v1.to_path_buf(), v1.join(name))
        };
        if dir.exists() {
            let _ = std::fs::remove_dir(&dir);
        }
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let cap = CpuCap { dir, root, percent };
        let write = |file: &str, v: String| {
            std::fs::write(cap.dir.join(file), v)
                .map_err(|e| format!("{}: {e}", cap.dir.join(file).display()))
        };
        if v2_has_cpu {
            write("cpu.max", format!("{quota} {PERIOD_US}"))?;
        } else {
            write("cpu.cfs_period_us", PERIOD_US.to_string())?;
            write("cpu.cfs_quota_us", quota.to_string())?;
        }
        Ok(cap)
    }

    /// Moves whole processes (all their threads) into the group.
    pub fn add(&self, pids: &[i32]) -> Result<(), String> {
        for p in pids {
            std::fs::write(self.dir.join("cgroup.procs"), p.to_string())
                .map_err(|e| format!("pid {p} into {}: {e}", self.dir.display()))?;
        }
        Ok(())
    }

    /// Times the group was throttled so far (`nr_throttled` of `cpu.stat`): a capped run
    /// that was never throttled did not reach its cap.
    pub fn throttled(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("cpu.stat"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("nr_throttled "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for CpuCap {
    fn drop(&mut self) {
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for p in procs.lines() {
                let _ = std::fs::write(self.root.join("cgroup.procs"), p);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}
