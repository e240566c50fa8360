//! CPU time of processes on this machine, from `/proc` (Linux), for benchmarks that report what
//! each party spends per event: the bench process, a broker, every PostgreSQL process.

/// CPU seconds (user + system) of `pid` (`"self"` for this process), plus those of its reaped
/// children when `children`. Zero when the process is gone or `/proc` is not there.
pub fn process_secs(pid: &str, children: bool) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces): state is field 3; utime, stime,
    // cutime, cstime are fields 14-17.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let ticks = if children {
        f.iter().sum::<f64>()
    } else {
        f.iter().take(2).sum::<f64>()
    };
    ticks / 100.0
}

/// CPU seconds of every PostgreSQL process, counting exited backends through the postmaster.
pub fn postgres_secs() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(|e| {
        let pid = e.ok()?.file_name().into_string().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        if comm.trim() != "postgres" {
            return None;
        }
        let ppid_is_postgres = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let ppid = s.rsplit_once(')')?.1.split_whitespace().nth(1)?.to_string();
                std::fs::read_to_string(format!("/proc/{ppid}/comm")).ok()
            })
            .is_some_and(|c| c.trim() == "postgres");
        // The postmaster (whose parent is not postgres) also carries its reaped children.
        Some(process_secs(&pid, !ppid_is_postgres))
    })
    .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_spends_cpu_while_it_works() {
        let before = process_secs("self", false);
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let spent = process_secs("self", false) - before;
        assert!(spent >= 0.1, "300 ms of busy work showed {spent} s of CPU");
        assert_eq!(process_secs("no-such-process", false), 0.0);
    }
}
