use crate::values::ValidationError;

/// How a rule violation should be reported to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The command's data breaks a rule (HTTP 422).
    Invalid,
    /// The aggregate's current state forbids the command (HTTP 409).
    Conflict,
}

/// A command rejected by a domain rule.
///
/// `rule` is a stable, machine-readable code (`order_not_placed`,
/// `refund_exceeds_captured`, ...) that APIs expose and tests match on;
/// `message` is for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DomainError {
    /// The rule's stable code.
    pub rule: &'static str,
    /// Whether the data or the state is at fault.
    pub kind: ErrorKind,
    /// The request field at fault, when there is one.
    pub field: Option<&'static str>,
    /// A human-readable explanation.
    pub message: String,
}

impl DomainError {
    /// The aggregate's state forbids this command.
    pub fn conflict(rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            rule,
            kind: ErrorKind::Conflict,
            field: None,
            message: message.into(),
        }
    }

    /// The command's data breaks a rule, attributable to `field`.
    pub fn invalid(field: &'static str, rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            rule,
            kind: ErrorKind::Invalid,
            field: Some(field),
            message: message.into(),
        }
    }
}

impl From<ValidationError> for DomainError {
    fn from(e: ValidationError) -> Self {
        Self::invalid(e.field, e.rule, e.message)
    }
}
