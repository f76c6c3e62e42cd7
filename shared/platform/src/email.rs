//! Sending email through SES v2, for the stream worker that sends the
//! outbox (`model::outbox`): no request waits on a send.
//!
//! A send that fails says whose fault it is (`SendError`): SES refusing
//! this recipient for good, which no retry mends, or anything else
//! (throttling, an outage, a timeout, the sender's identity or the account
//! in a bad state), which a later attempt may get through.
//!
//! No log line shows an email's text, at any level and locally too: the
//! verification and reset emails hold a one-time token, and whoever reads
//! the logs must not be able to take over an account with it. Under `make
//! dev` the emulator keeps every email sent (docs/ARCHITECTURE.md says
//! where to read them), which is the local way to get a token.

use std::time::Duration;

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};

use crate::config::{ConfigError, Source, http_url, required};

/// Sender address and the public URL links in emails point at.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// `EMAIL_FROM`: a verified SES identity.
    pub from: String,
    /// `APP_URL`: where the links in emails lead.
    pub app_url: String,
}

impl EmailConfig {
    pub fn from_source(source: &dyn Source) -> Result<Self, ConfigError> {
        let from = required(source, "EMAIL_FROM")?;
        if !from.contains('@') {
            return Err(ConfigError::Invalid {
                name: "EMAIL_FROM",
                reason: "must be an email address".into(),
            });
        }
        Ok(Self {
            from: from.trim().to_owned(),
            app_url: http_url(source, "APP_URL", Some("http://127.0.0.1:3000"))?,
        })
    }
}

/// One plain-text email.
#[derive(Clone)]
pub struct OutgoingEmail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

// Its text may hold a one-time token.
crate::redacted_debug!(OutgoingEmail);

#[derive(Debug, Clone)]
pub struct Mailer {
    client: aws_sdk_sesv2::Client,
    config: EmailConfig,
}

/// A send that takes longer than this is abandoned: an attempt must leave
/// room for the next ones within the worker's timeout.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(3);

/// Why SES did not take an email.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// This recipient is refused for good: the email is not to be retried.
    #[error("refused by SES: {code}")]
    Refused { code: String },
    /// Our side or a passing state: worth another attempt later.
    #[error("not sent, to retry: {code}")]
    Retry { code: String },
}

/// The SES error codes that refuse the message or its recipient, not us:
/// retrying sends the same refused email again. A sender whose identity
/// is not verified also gets `MessageRejected`, but says so (`classify`).
const REFUSALS: &[&str] = &["MessageRejected", "BadRequestException"];

/// Whether SES's answer `code` (with its `message`) refuses the email for
/// good; every other failure, known or not, is retried, since giving up on
/// an email is the one thing that cannot be undone.
pub fn classify(code: &str, message: &str) -> SendError {
    let ours = message.to_ascii_lowercase().contains("not verified");
    if REFUSALS.contains(&code) && !ours {
        SendError::Refused { code: code.into() }
    } else {
        SendError::Retry { code: code.into() }
    }
}

fn build_error(err: impl std::fmt::Display) -> SendError {
    SendError::Retry {
        code: format!("building the email: {err}"),
    }
}

impl Mailer {
    pub fn new(client: aws_sdk_sesv2::Client, config: EmailConfig) -> Self {
        Self { client, config }
    }

    pub fn app_url(&self) -> &str {
        &self.config.app_url
    }

    /// One attempt, bounded by `SEND_TIMEOUT`.
    pub async fn send(&self, email: &OutgoingEmail) -> Result<(), SendError> {
        let text = |data: &str| {
            Content::builder()
                .data(data)
                .charset("UTF-8")
                .build()
                .map_err(build_error)
        };
        let content = EmailContent::builder()
            .simple(
                Message::builder()
                    .subject(text(&email.subject)?)
                    .body(Body::builder().text(text(&email.text)?).build())
                    .build(),
            )
            .build();
        let send = self
            .client
            .send_email()
            .from_email_address(&self.config.from)
            .destination(Destination::builder().to_addresses(&email.to).build())
            .content(content)
            .send();
        match tokio::time::timeout(SEND_TIMEOUT, send).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(SdkError::ServiceError(failed))) => {
                let err = failed.err();
                Err(classify(
                    err.code().unwrap_or("Unknown"),
                    err.message().unwrap_or_default(),
                ))
            }
            Ok(Err(other)) => Err(SendError::Retry {
                code: format!(
                    "unavailable: {}",
                    aws_sdk_sesv2::error::DisplayErrorContext(&other)
                ),
            }),
            Err(_) => Err(SendError::Retry {
                code: "timed out".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refusal_of_the_email_is_final() {
        for code in REFUSALS {
            assert!(matches!(
                classify(code, "Address blacklisted."),
                SendError::Refused { .. }
            ));
        }
        for code in [
            "TooManyRequestsException",
            "LimitExceededException",
            "MailFromDomainNotVerifiedException",
            "AccountSuspendedException",
            "SendingPausedException",
            "ServiceUnavailable",
            "InternalFailure",
            "SomethingNew",
        ] {
            assert_eq!(classify(code, "x"), SendError::Retry { code: code.into() });
        }
        // The sender's identity is ours to fix, whatever the code says.
        assert!(matches!(
            classify("MessageRejected", "Email address is not verified."),
            SendError::Retry { .. }
        ));
    }
}
