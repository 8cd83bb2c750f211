//! Named threads without std's naming path. std names a thread with
//! `pthread_setname_np`, which musl implements by formatting a `/proc/self/task/…/comm`
//! path with `snprintf`: that one call links musl's whole printf family (about 10 KB on
//! mipsel) into a binary that otherwise never formats with C. `prctl(PR_SET_NAME)` from
//! inside the new thread is one system call and gives `ps -T`/`top` the same name.

use std::ffi::CString;
use std::thread::JoinHandle;

/// Spawns `f` on a new thread named `name` for the kernel (at most 15 bytes are kept).
/// The name is only for the OS's tools: std's own `Thread::name` stays unset.
///
/// # Errors
/// As `std::thread::Builder::spawn`: the OS refused a new thread.
pub fn spawn<F, T>(name: &str, f: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let name = CString::new(name.replace('\0', "")).unwrap_or_default();
    std::thread::Builder::new().spawn(move || {
        // A name the kernel refuses is not worth failing the thread for.
        let _ = nix::sys::prctl::set_name(&name);
        f()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kernel_sees_the_name() {
        let seen = super::spawn("pcx-test-name", || {
            std::fs::read_to_string("/proc/thread-self/comm").unwrap_or_default()
        })
        .unwrap()
        .join()
        .unwrap();
        assert_eq!(seen.trim_end(), "pcx-test-name");
    }
}
