//! The Lambda side of the event functions (the websocket function and the
//! stream worker): a handler built once, as a service that `main` hands to
//! `lambda_runtime::run` and the local gateway invokes in process, so both
//! run the very same value.

use std::future::Future;

use lambda_runtime::LambdaEvent;
use tower::util::BoxCloneSyncService;

/// A function that takes events of type `E` and answers `R`.
pub type EventService<E, R> = BoxCloneSyncService<LambdaEvent<E>, R, lambda_runtime::Error>;

/// Wraps an event handler that cannot fail as a whole (its failures are in
/// its answer, as API Gateway and the stream's batch response want them).
pub fn event_service<E, R, F, Fut>(handler: F) -> EventService<E, R>
where
    E: Send + 'static,
    R: 'static,
    F: Fn(E) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    BoxCloneSyncService::new(tower::service_fn(move |event: LambdaEvent<E>| {
        let answer = handler(event.payload);
        async move { Ok::<_, lambda_runtime::Error>(answer.await) }
    }))
}

/// Invokes an event service in process, as the Lambda runtime would.
pub async fn invoke<E, R>(
    service: &EventService<E, R>,
    event: E,
) -> Result<R, lambda_runtime::Error>
where
    E: Send + 'static,
    R: 'static,
{
    use tower::ServiceExt;
    service
        .clone()
        .oneshot(LambdaEvent::new(event, lambda_runtime::Context::default()))
        .await
}
