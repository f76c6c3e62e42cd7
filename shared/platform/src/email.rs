//! Sending email through SES v2.
//!
//! A failed send never fails the request that caused it (docs/API.md §8):
//! `send_or_log` logs the failure with its cause and returns.
//!
//! No log line shows an email's text, at any level and locally too: the
//! verification and reset emails hold a one-time token, and whoever reads
//! the logs must not be able to take over an account with it. Under `make
//! dev` the emulator keeps every email sent (docs/ARCHITECTURE.md says
//! where to read them), which is the local way to get a token.

use std::time::Duration;

use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use crate::{
    config::{ConfigError, Source, http_url, required},
    error::{AppError, ErrorChain},
};

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

/// A send that takes longer than this is abandoned: the request waits for
/// nobody's mail server.
const SEND_TIMEOUT: Duration = Duration::from_secs(3);

impl Mailer {
    pub fn new(client: aws_sdk_sesv2::Client, config: EmailConfig) -> Self {
        Self { client, config }
    }

    pub fn app_url(&self) -> &str {
        &self.config.app_url
    }

    pub async fn send(&self, email: &OutgoingEmail) -> Result<(), AppError> {
        let content = EmailContent::builder()
            .simple(
                Message::builder()
                    .subject(
                        Content::builder()
                            .data(&email.subject)
                            .charset("UTF-8")
                            .build()
                            .map_err(|e| AppError::internal("building an email", e))?,
                    )
                    .body(
                        Body::builder()
                            .text(
                                Content::builder()
                                    .data(&email.text)
                                    .charset("UTF-8")
                                    .build()
                                    .map_err(|e| AppError::internal("building an email", e))?,
                            )
                            .build(),
                    )
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
            Ok(Err(err)) => Err(model::error::translate("ses", err).into()),
            Err(_) => Err(AppError::Unavailable {
                service: "ses",
                source: Some("send timed out".into()),
            }),
        }
    }

    /// Sends, and on failure logs instead of failing the caller.
    pub async fn send_or_log(&self, email: &OutgoingEmail) -> bool {
        match self.send(email).await {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(error = %ErrorChain(&err), subject = %email.subject, "email not sent");
                false
            }
        }
    }
}
