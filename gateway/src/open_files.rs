//! The limit on open files. Every device connection, the broker connection, the buffer's files
//! and each status connection hold a file descriptor; the common default soft limit of 1,024
//! is reached by a few hundred clients, and then accepting a device connection fails. At
//! start-up `medgw run` raises the soft limit to the hard one (no privilege needed) and warns
//! when even that leaves no room for the configured devices.

/// Descriptors besides the devices and the status connections: standard streams, the
/// runtime's event queue, the buffer's database, journal and shared-memory files, the broker
/// connection, listeners, D-Bus, with a margin.
pub const BASE: u64 = 64;
/// Descriptors per device: its port or socket, and a replacement connection being handed over.
pub const PER_DEVICE: u64 = 2;

/// The soft limit before and after raising it to the hard limit.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
pub fn raise() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = lim.rlim_cur as u64;
    // Only when there is something to raise: under systemd `LimitNOFILE=` sets both limits
    // and the unit's system-call filter may forbid setrlimit.
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok((before, lim.rlim_cur as u64))
}

/// The descriptors a gateway with `devices` devices and `status_connections` status
/// connections may hold at once.
pub fn needed(devices: usize, status_connections: usize) -> u64 {
    BASE + PER_DEVICE * devices as u64 + status_connections as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        let (before, after) = raise().unwrap();
        assert!(after >= before);
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
        assert_eq!(lim.rlim_cur, after);
    }
}
