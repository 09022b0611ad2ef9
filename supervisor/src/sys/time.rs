//! Local time: the offset of the local time zone from UTC at an instant
//! (`localtime_r(3)`, which reads `TZ` and `/etc/localtime`). Used where
//! nsvisor must print times the way supervisord does (in local time).

/// Seconds east of UTC of the local time zone at `unix` (seconds since the
/// epoch); 0 when the C library cannot tell.
pub fn utc_offset_secs(unix: i64) -> i64 {
    let t: libc::time_t = unix;
    // SAFETY: an all-zero `tm` is a valid value of this plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals of the right types;
    // localtime_r is the thread-safe variant and keeps no pointer to them.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        tm.tm_gmtoff
    } else {
        0
    }
}
