//! Durable reminders of keyed actors: a reminder set in a turn is delivered to its key after
//! its delay even when no process runs at that time (the server holds it), and one cancelled is
//! not.

use std::time::Duration;

use nats_actors::prelude::*;
use nats_actors_suite::{eventually, logs, server, start};

/// A reminder to set: its name and delay.
#[derive(Debug, Serialize, Deserialize)]
struct Arm {
    name: String,
    after_ms: u64,
}

#[derive(Actor, Default, Serialize, Deserialize)]
#[actor(key = "alarm.{id}")]
struct Alarm {
    rang: Vec<String>,
}

#[handlers]
impl Alarm {
    #[command("alarm.{id}.arm")]
    async fn arm(&mut self, arms: Vec<Arm>, ctx: &Context) -> Result<(), HandlerError> {
        for a in arms {
            ctx.remind_in(&a.name, Duration::from_millis(a.after_ms), "ring", &a.name)
                .await
                .map_err(|e| HandlerError::bad_request(e.to_string()))?;
        }
        Ok(())
    }

    #[command("alarm.{id}.disarm")]
    async fn disarm(&mut self, name: String, ctx: &Context) -> Result<(), HandlerError> {
        ctx.cancel_reminder(&name)
            .await
            .map_err(|e| HandlerError::new(e.to_string()))
    }

    #[command("alarm.{id}.ring")]
    async fn ring(&mut self, name: String) {
        self.rang.push(name);
    }

    #[ask("alarm.{id}.rang")]
    async fn rang(&self) -> Vec<String> {
        self.rang.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_fires_after_every_process_restarted_and_a_cancelled_one_does_not() {
    logs();
    let server = server();
    let runtime = start(&server, Alarm::default()).await;
    let alarm = AlarmRef::new(runtime.client(), "a").unwrap();
    let arm = |name: &str, after_ms| Arm {
        name: name.into(),
        after_ms,
    };
    alarm
        .arm(&vec![
            arm("soon", 2000),
            arm("cancelled", 2500),
            arm("later", 4000),
        ])
        .await
        .unwrap();
    alarm.disarm(&"cancelled".to_string()).await.unwrap();
    assert!(alarm.rang().await.unwrap().is_empty());
    // No process runs while the reminders are due.
    runtime.shutdown().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let runtime = start(&server, Alarm::default()).await;
    let alarm = AlarmRef::new(runtime.client(), "a").unwrap();
    let rang = || async { alarm.rang().await.unwrap() };
    assert!(
        eventually(Duration::from_secs(10), || async {
            rang().await.len() >= 2
        })
        .await,
        "rang: {:?}",
        rang().await
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rang().await, vec!["soon".to_string(), "later".to_string()]);
    // While a process runs, a reminder comes after its delay, not before.
    alarm.arm(&vec![arm("again", 1500)]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rang().await.len(), 2, "not before its time");
    assert!(
        eventually(Duration::from_secs(5), || async { rang().await.len() == 3 }).await,
        "rang: {:?}",
        rang().await
    );
    runtime.shutdown().await;
}
