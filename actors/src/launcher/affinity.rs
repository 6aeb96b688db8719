//! Pinning a host thread to a set of CPUs (the CPUs NVML reports next to a GPU).

/// Pins the calling thread to `cpus` (all of them: the scheduler picks among them).
pub fn pin_current_thread(cpus: &[usize]) -> std::io::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    for &cpu in cpus
        .iter()
        .filter(|&&cpu| cpu < rustix::thread::CpuSet::MAX_CPU)
    {
        set.set(cpu);
    }
    rustix::thread::sched_setaffinity(None, &set).map_err(std::io::Error::from)
}

/// The CPUs the calling thread may run on.
pub fn current_thread_cpus() -> std::io::Result<Vec<usize>> {
    let set = rustix::thread::sched_getaffinity(None).map_err(std::io::Error::from)?;
    Ok((0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect())
}

/// CPU ids from NVML's affinity bitmask words (`cpu_affinity`: bit `b` of word `w` is
/// CPU `w × 64 + b` on 64-bit platforms).
pub fn cpus_from_mask(words: &[u64]) -> Vec<usize> {
    words
        .iter()
        .enumerate()
        .flat_map(|(word, &bits)| {
            (0..64)
                .filter(move |bit| bits & (1u64 << bit) != 0)
                .map(move |bit| word * 64 + bit)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_words_become_cpu_ids() {
        assert_eq!(cpus_from_mask(&[]), Vec::<usize>::new());
        assert_eq!(cpus_from_mask(&[0b1011]), [0, 1, 3]);
        assert_eq!(cpus_from_mask(&[1 << 63, 1]), [63, 64]);
    }

    #[test]
    fn pinning_restricts_the_thread() {
        let allowed = current_thread_cpus().unwrap();
        let first = allowed[0];
        std::thread::spawn(move || {
            pin_current_thread(&[first]).unwrap();
            assert_eq!(current_thread_cpus().unwrap(), [first]);
        })
        .join()
        .unwrap();
    }
}
