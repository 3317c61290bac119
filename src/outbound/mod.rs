//! Outbound delivery: MX resolution, the SMTP client, opportunistic STARTTLS and MTA-STS.
