//! The rate limit's verdict on one request, as something its route can wait
//! for.
//!
//! Every `/api/` route starts at once, alongside its rate-limit hit, so that
//! its reads and the session check share the hit's round trip instead of
//! following it. What must not happen before the verdict is a write: a
//! refused request has to change nothing. A route therefore gets its writes
//! out only after [`Admission::granted`], which the extractors that write
//! routes use ([`crate::auth::AuthUser`], [`crate::auth::PendingAuth`]) wait
//! for themselves; a route that writes without a user (register, login …)
//! waits for it in its handler. When the limit says no, the edge drops the
//! route wherever it is (`crate::http`), so a route waiting here never
//! resumes.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use http::{Method, request::Parts};
use tokio::sync::watch;

use crate::error::AppError;

/// The waiting side of a request's verdict; cheap to clone.
#[derive(Debug, Clone)]
pub struct Admission {
    verdict: watch::Receiver<Verdict>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pending,
    Granted,
    Refused,
}

/// The deciding side, held by the edge while the hit is counted.
#[derive(Debug)]
pub struct Verdicts(watch::Sender<Verdict>);

impl Verdicts {
    /// Lets the request's writes go out (`true`) or refuses them.
    pub fn decide(self, granted: bool) {
        // No receiver left means the route has already finished: nothing
        // is waiting for the answer.
        let _ = self.0.send(if granted {
            Verdict::Granted
        } else {
            Verdict::Refused
        });
    }
}

impl Admission {
    /// A verdict still to come, and the handle that gives it.
    pub fn pending() -> (Self, Verdicts) {
        let (sender, verdict) = watch::channel(Verdict::Pending);
        (Self { verdict }, Verdicts(sender))
    }

    /// A request no limit applies to (`/health`, or a router called without
    /// the edge, as unit tests do).
    pub fn unlimited() -> Self {
        let (_, verdict) = watch::channel(Verdict::Granted);
        Self { verdict }
    }

    /// Waits until the limit has let the request through. A refusal (or an
    /// edge gone without deciding) is the 429 the edge answers anyway.
    pub async fn granted(&self) -> Result<(), AppError> {
        let mut verdict = self.verdict.clone();
        match verdict.wait_for(|v| *v != Verdict::Pending).await {
            Ok(v) if *v == Verdict::Granted => Ok(()),
            _ => Err(AppError::RateLimited {
                retry_after_secs: 1,
            }),
        }
    }

    /// Waits for the verdict only where the method can write: a `GET` or
    /// `HEAD` reads, and what it read is thrown away if the limit says no.
    pub async fn granted_for(&self, method: &Method) -> Result<(), AppError> {
        if is_read_only(method) {
            Ok(())
        } else {
            self.granted().await
        }
    }

    /// Runs `reads` while the verdict is awaited, and answers once both are
    /// in: the refusal first, so a refused caller learns nothing from them.
    pub async fn alongside<T>(
        &self,
        reads: impl Future<Output = Result<T, AppError>>,
    ) -> Result<T, AppError> {
        let (verdict, reads) = tokio::join!(self.granted(), reads);
        verdict?;
        reads
    }

    /// The request's admission as the edge recorded it, or
    /// [`Admission::unlimited`] when no limit applies.
    pub fn of(parts: &Parts) -> Self {
        parts
            .extensions
            .get::<Admission>()
            .cloned()
            .unwrap_or_else(Self::unlimited)
    }
}

/// Only `GET` and `HEAD` never write, so only they may finish before the
/// verdict.
pub fn is_read_only(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

impl<S: Send + Sync> FromRequestParts<S> for Admission {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn is_refusal(result: Result<(), AppError>) -> bool {
        matches!(result, Err(AppError::RateLimited { .. }))
    }

    #[tokio::test]
    async fn a_write_waits_until_the_verdict_and_goes_on_when_granted() {
        let (admission, verdicts) = Admission::pending();
        let waiting = tokio::spawn(async move { admission.granted().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "went on before the verdict");
        verdicts.decide(true);
        assert!(waiting.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn a_refusal_or_an_edge_gone_without_deciding_is_a_429() {
        let (admission, verdicts) = Admission::pending();
        verdicts.decide(false);
        assert!(is_refusal(admission.granted().await));
        let (admission, verdicts) = Admission::pending();
        drop(verdicts);
        assert!(is_refusal(admission.granted().await));
    }

    #[tokio::test]
    async fn reads_need_no_verdict_and_every_other_method_does() {
        let (admission, _verdicts) = Admission::pending();
        for method in [Method::GET, Method::HEAD] {
            assert!(admission.granted_for(&method).await.is_ok(), "{method}");
        }
        for method in [
            "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PURGE",
        ] {
            let method: Method = method.parse().unwrap();
            let waited =
                tokio::time::timeout(Duration::from_millis(20), admission.granted_for(&method))
                    .await;
            assert!(waited.is_err(), "{method} went on before the verdict");
        }
    }

    #[tokio::test]
    async fn reads_alongside_run_before_the_verdict_and_the_refusal_wins() {
        let (admission, verdicts) = Admission::pending();
        let (read_tx, read_rx) = tokio::sync::oneshot::channel();
        let reads = async move {
            read_tx.send(()).unwrap();
            Ok::<_, AppError>(7)
        };
        let answered = tokio::spawn(async move { admission.alongside(reads).await });
        read_rx.await.expect("the read started before any verdict");
        verdicts.decide(false);
        assert!(matches!(
            answered.await.unwrap(),
            Err(AppError::RateLimited { .. })
        ));
        let (admission, verdicts) = Admission::pending();
        verdicts.decide(true);
        assert_eq!(admission.alongside(async { Ok(7) }).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn without_an_edge_a_request_is_unlimited() {
        let parts = http::Request::new(()).into_parts().0;
        assert!(Admission::of(&parts).granted().await.is_ok());
    }
}
