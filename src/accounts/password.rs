//! argon2id password hashes in PHC string form, and the bounded verifier logins use.
//!
//! One verification of a default hash needs 19 MiB (m=19456 KiB). Run on any number of
//! blocking threads, each allocation lands in that thread's malloc arena, which keeps it:
//! 200 logins grew RSS from 10 to 128 MiB. `Verifier` runs at most one verification per core
//! (`hash_password_into_with_memory`) on buffers mapped straight from the kernel, outside
//! malloc: one is kept for the next verification while others are running or waiting (a
//! burst of logins reuses it), and unmapped when the last one ends. So a burst costs
//! `slots × m_cost` while it lasts, and an idle server keeps none of it (a lone login maps
//! its 19 MiB afresh: a few milliseconds of page faults beside the hash's own time, and the
//! auth cache spares repeated logins the hash altogether).

use std::sync::{Condvar, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::AccountError;

/// A valid hash of a random password, checked against when the user does not exist so a
/// failed login costs the same either way.
pub(crate) const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2ub3L8Us5IHQ7b6Ne7uGxjJK7xIMfmT8FrNGMdT6F2E";

pub fn hash_password(password: &str) -> Result<String, AccountError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

/// Hashes whose memory cost exceeds this (KiB) are refused rather than allocated: the accounts
/// file is ours, but a hand-edited `m=4194304` must not take the machine down at each login.
const MAX_M_COST_KIB: u32 = 256 * 1024;

/// Buffers kept for a verification that is already running or waiting; the rest go back to
/// the kernel.
const KEEP: usize = 1;

/// At most `slots` verifications at once, each with a reused block buffer.
pub struct Verifier {
    slots: usize,
    pool: Mutex<Pool>,
    freed: Condvar,
}

struct Pool {
    /// At most `KEEP` idle buffers.
    free: Vec<BlockBuf>,
    /// Buffers handed out and not yet returned.
    busy: usize,
    /// Verifications waiting for a slot.
    waiting: usize,
}

impl Verifier {
    /// `slots` concurrent verifications (at least 1); one per core is the intended setting.
    pub fn new(slots: usize) -> Verifier {
        Verifier {
            slots: slots.max(1),
            pool: Mutex::new(Pool {
                free: Vec::new(),
                busy: 0,
                waiting: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// One per core, as the machine reports it.
    pub fn per_core() -> Verifier {
        Verifier::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Does `password` match the PHC string `phc`? Blocks while every slot is in use.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        let Some(job) = Job::parse(phc) else {
            return false;
        };
        let blocks = job.params.block_count();
        let mut buf = match self.take() {
            Some(b) if b.len >= blocks => b,
            _ => match BlockBuf::new(blocks) {
                Some(b) => b,
                None => {
                    self.release();
                    return false;
                }
            },
        };
        let mut out = vec![0u8; job.expected.len()];
        let ok = Argon2::new(job.algorithm, job.version, job.params.clone())
            .hash_password_into_with_memory(
                password.as_bytes(),
                &job.salt,
                &mut out,
                &mut buf.blocks_mut()[..blocks],
            )
            .is_ok()
            && constant_time_eq(&out, &job.expected);
        self.give_back(buf);
        ok
    }

    /// Wait for a slot; a kept buffer comes with it if there is one.
    fn take(&self) -> Option<BlockBuf> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        while pool.busy >= self.slots {
            pool.waiting += 1;
            pool = self.freed.wait(pool).unwrap_or_else(|e| e.into_inner());
            pool.waiting -= 1;
        }
        pool.busy += 1;
        pool.free.pop()
    }

    fn give_back(&self, buf: BlockBuf) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        // `busy` still counts this verification: keep the buffer only for another one.
        let others = pool.busy > 1 || pool.waiting > 0;
        if others && pool.free.len() < KEEP {
            pool.free.push(buf);
        } else if !others {
            // The last one: nothing is kept at rest (`pool.free` is empty or emptied here).
            pool.free.clear();
        }
        // else: dropped here, unmapped.
        drop(pool);
        self.release();
    }

    fn release(&self) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.busy -= 1;
        drop(pool);
        self.freed.notify_one();
    }
}

/// Argon2 blocks in an anonymous private mapping: zeroed by the kernel, returned to it on
/// drop, never part of a malloc arena.
struct BlockBuf {
    ptr: std::ptr::NonNull<Block>,
    len: usize,
}

// SAFETY: the mapping is owned exclusively by this value.
unsafe impl Send for BlockBuf {}

impl BlockBuf {
    fn new(len: usize) -> Option<BlockBuf> {
        let bytes = len.checked_mul(Block::SIZE)?.max(Block::SIZE);
        // SAFETY: a fresh anonymous mapping, no address hint; checked for MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        // Page-aligned, so aligned for Block (64).
        Some(BlockBuf {
            ptr: std::ptr::NonNull::new(p.cast())?,
            len,
        })
    }

    fn blocks_mut(&mut self) -> &mut [Block] {
        // SAFETY: `len` Blocks of mapped, zero-initialised memory (all-zero is a valid Block,
        // an array of u64), exclusively borrowed through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for BlockBuf {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, with the same length.
        unsafe {
            libc::munmap(
                self.ptr.as_ptr().cast(),
                (self.len * Block::SIZE).max(Block::SIZE),
            );
        }
    }
}

/// A PHC string taken apart for `hash_password_into_with_memory`.
struct Job {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: Vec<u8>,
    expected: Vec<u8>,
}

impl Job {
    fn parse(phc: &str) -> Option<Job> {
        let h = PasswordHash::new(phc).ok()?;
        let algorithm = Algorithm::new(h.algorithm.as_str()).ok()?;
        let version = match h.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&h).ok()?;
        if params.m_cost() > MAX_M_COST_KIB {
            return None;
        }
        Some(Job {
            algorithm,
            version,
            params,
            salt: h.salt?.as_ref().to_vec(),
            expected: h.hash?.as_bytes().to_vec(),
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn verifier_agrees_with_the_library() {
        let v = super::Verifier::new(2);
        let h = super::hash_password("hunter2").unwrap();
        assert!(v.verify("hunter2", &h));
        assert!(!v.verify("hunter3", &h));
        assert!(!v.verify("x", "garbage"));
        assert!(!v.verify("x", super::DUMMY_HASH));
        // Non-default parameters (and argon2i) are read from the PHC string.
        use argon2::password_hash::PasswordHasher;
        let params = argon2::Params::new(64, 3, 2, Some(16)).unwrap();
        let custom =
            argon2::Argon2::new(argon2::Algorithm::Argon2i, argon2::Version::V0x10, params);
        let h = custom.hash_password(b"pw").unwrap().to_string();
        assert!(h.starts_with("$argon2i$v=16$m=64,t=3,p=2$"), "{h}");
        assert!(v.verify("pw", &h));
        assert!(!v.verify("pW", &h));
        // Several threads share two slots and all get their answer.
        let h = super::hash_password("pw").unwrap();
        std::thread::scope(|s| {
            for i in 0..6 {
                let (v, h) = (&v, &h);
                s.spawn(move || {
                    assert_eq!(
                        v.verify(if i % 2 == 0 { "pw" } else { "no" }, h),
                        i % 2 == 0
                    )
                });
            }
        });
        // At rest nothing stays mapped.
        assert!(v.pool.lock().unwrap().free.is_empty());
        assert_eq!(v.pool.lock().unwrap().busy, 0);
        assert_eq!(v.pool.lock().unwrap().waiting, 0);
    }

    #[test]
    fn round_trip() {
        let h = super::hash_password("hunter2").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify_password("hunter2", &h));
        assert!(!super::verify_password("hunter3", &h));
        assert!(!super::verify_password("x", "garbage"));
        // The dummy must parse, or the timing equalisation silently does nothing.
        assert!(argon2::password_hash::phc::PasswordHash::new(super::DUMMY_HASH).is_ok());
    }
}
