//! No busy-waiting: an idle pool worker sleeps while a sibling handles a slow message, and
//! an idle runtime uses no CPU. Alone in its test binary, because it measures the process's
//! CPU time (Linux: `/proc/self/stat`).

mod support;

use std::time::Duration;

use vortex::prelude::*;

/// User + system CPU time of this process so far.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("procfs");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on every Linux the project supports.
    Duration::from_millis(ticks * 10)
}

struct Napper;

enum Work {
    /// Sleeps a second in the handler, then answers.
    Nap(Reply<()>),
    /// Answers at once.
    Quick(Reply<()>),
}

impl Actor for Napper {
    type Message = Work;
    async fn handle(&mut self, work: Work, _: &mut Context<Self>) -> Result<(), ActorError> {
        match work {
            Work::Nap(done) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                done.send(());
            }
            Work::Quick(done) => done.send(()),
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_does_not_spin_while_its_sibling_is_busy() {
    let rt = Runtime::builder().build().unwrap();
    let pool = rt.spawn_pool("nappers", 2, || Napper).await.unwrap();
    // One worker sleeps in its handler for a second; the other handles a quick message
    // meanwhile and then has nothing to do (it looks for work while the nap is in hand).
    let nap = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.ask_timeout(Work::Nap, Duration::from_secs(10)).await })
    };
    support::wait_until("the nap started", Duration::from_secs(5), || {
        pool.mailbox_len() == 0
    })
    .await;
    pool.ask(Work::Quick).await.unwrap();
    let before = process_cpu();
    nap.await.unwrap().unwrap();
    let used = process_cpu() - before;
    assert!(
        used < Duration::from_millis(50),
        "the process used {used:?} of CPU in an idle second (limit 5% of a core)"
    );
    // And a whole idle runtime: nothing spins.
    let before = process_cpu();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let used = process_cpu() - before;
    assert!(
        used < Duration::from_millis(30),
        "idle runtime used {used:?}"
    );
    rt.shutdown().await;
}
