"""SMTP: the submission listeners (STARTTLS and implicit TLS). Knows SMTP; asks routing what to do."""
