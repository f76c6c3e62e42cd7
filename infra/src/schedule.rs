//! The local stand-in for EventBridge's schedules: each `Type: Schedule`
//! event of template.yaml invokes its function in process at its rate,
//! with the event EventBridge would send, as the stream poller stands in
//! for the stream's event source mapping. The outbox sweep runs this way
//! under `make dev`.
//!
//! The first run comes one period after the start, as a new rule's does.
//! A run that outlasts its period delays the next one rather than running
//! beside it.

use serde_json::json;

use crate::{functions::SweepService, template::Template};

/// What the call recorder names the scheduled invocations by (they serve
/// no route).
pub const SCHEDULE_ROUTE: &str = "Schedule";

#[derive(Debug, thiserror::Error)]
#[error("scheduler: {0}")]
pub struct ScheduleError(String);

/// The event EventBridge sends for a schedule's rule `rule`, now.
pub fn scheduled_event(region: &str, rule: &str) -> stream::ScheduledEvent {
    let event = json!({
        "version": "0",
        "id": ulid::Ulid::new().to_string(),
        "detail-type": stream::ScheduledEvent::DETAIL_TYPE,
        "source": "aws.events",
        "account": "000000000000",
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": region,
        "resources": [format!("arn:aws:events:{region}:000000000000:rule/{rule}")],
        "detail": {},
    });
    serde_json::from_value(event).expect("a scheduled event reads as one")
}

/// Runs `sweep` once, as one of the schedule's invocations.
pub async fn run_once(sweep: &SweepService, region: &str, rule: &str) -> Option<stream::Tally> {
    let event = scheduled_event(region, rule);
    match crate::calls::serving(
        SCHEDULE_ROUTE.to_owned(),
        platform::lambda::invoke(sweep, event),
    )
    .await
    {
        Ok(tally) => Some(tally),
        Err(err) => {
            tracing::error!(error = %err, rule, "scheduled invocation failed");
            None
        }
    }
}

/// Starts the schedule of the stream function's `Type: Schedule` event:
/// `sweep` at its rate, until the task is aborted.
pub fn start(
    template: &Template,
    region: &str,
    sweep: SweepService,
) -> Result<tokio::task::JoinHandle<()>, ScheduleError> {
    let stream = crate::functions::stream_logical_id();
    let event = match template
        .schedule_events
        .iter()
        .filter(|event| event.function == stream)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [event] => (*event).clone(),
        other => {
            return Err(ScheduleError(format!(
                "expected one Schedule event on {stream}, found {}",
                other.len()
            )));
        }
    };
    let period = event.every;
    let region = region.to_owned();
    Ok(tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Some(tally) = run_once(&sweep, &region, &event.name).await {
                tracing::debug!(rule = %event.name, ?tally, "schedule ran");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_is_eventbridges_scheduled_event() {
        let event = scheduled_event("eu-west-1", "OutboxSweep");
        assert_eq!(event.detail_type, "Scheduled Event");
        assert_eq!(event.source, "aws.events");
        assert!(event.time.is_some());
    }
}
