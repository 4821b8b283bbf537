"""Every SMTP reply the gateway chooses, in one place: code, enhanced status code (RFC 3463) and a sentence."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    code: int
    status: str
    text: str

    def __post_init__(self) -> None:
        if not self.text.isascii():  # SMTP replies are ASCII (RFC 5321 2.4)
            raise ValueError(f"SMTP reply text must be ASCII: {self.text!r}")

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"

    @property
    def ok(self) -> bool:
        return self.code < 400

    def with_text(self, text: str) -> Reply:
        return Reply(self.code, self.status, text)


RCPT_OK = Reply(250, "2.1.5", "Recipient OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
ACCEPTED = Reply(250, "2.0.0", "Message accepted")

NOT_YOUR_ADDRESS = Reply(553, "5.7.1", "Sender address must be your own mailbox address")
NULL_SENDER = Reply(553, "5.7.1", "An authenticated submission cannot use the null sender <>")
HEADER_FROM_SPOOFED = Reply(550, "5.7.1", "The From header must be your own mailbox address, alone")
NO_RELAY = Reply(550, "5.7.1", "Relaying denied: this gateway delivers only to its own domains")
ADDRESS_TRICK = Reply(550, "5.7.1", "Relaying denied: %-hacks, '!' paths, source routes and quoted local parts "
                                    "are not accepted")
BAD_ADDRESS = Reply(501, "5.1.3", "Bad recipient address syntax")
UNKNOWN_MAILBOX = Reply(550, "5.1.1", "No such mailbox here")
#: ``[directory] check_recipients``: the remote address is not in the Annuaire Santé (gateway/directory).
NOT_PUBLISHED = Reply(550, "5.1.1", "This address is not published in the Annuaire Sante; check the address "
                                    "with the recipient (gateway directory mailbox ADDRESS)")
DISABLED_MAILBOX = Reply(550, "5.2.1", "This mailbox is disabled")
#: Temporary (RFC 3463 4.2.2): the sender retries and the mail arrives once the user has made room.
MAILBOX_FULL = Reply(452, "4.2.2", "Mailbox full")
BAD_INS_KEY = Reply(550, "5.1.3", "Patient address refused: the INS matricule key is wrong (R8)")
BAD_INS_SHAPE = Reply(550, "5.1.3", "Patient address refused: a patient address is a 15-character INS matricule (R8)")
MATRICULE_OBSOLETE = Reply(550, "5.1.6", "Patient address refused: this INS matricule is obsolete and was replaced "
                                         "by the principal one; write to the new address (R8)")
NOT_QUALIFIED = Reply(550, "5.7.1", "Patient address refused: this patient's identity is not qualified "
                                    "(status 'qualifiee') in the structure's repository; qualify it first (R4)")
PATIENT_TO_PATIENT = Reply(550, "5.7.1", "A patient may write only to professionals (R1)")
PATIENT_FIRST = Reply(550, "5.7.1", "Refused: a patient can write to a professional only after the professional "
                                    "has started a conversation (R1)")
CONVERSATION_CLOSED = Reply(550, "5.7.1", "Refused: the professional ended this conversation with [FIN]; wait for "
                                          "their next message (R2)")
REPLIES_BLOCKED = Reply(550, "5.7.1", "Refused: the professional does not accept replies in this conversation (R3)")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients for one message")
NO_VALID_RECIPIENT = Reply(554, "5.5.1", "No valid recipients")
BARE_LINE_ENDING = Reply(550, "5.5.2", "Message refused: bare CR or LF in DATA is not allowed (RFC 5321 2.3.8); "
                                       "nothing was stored")
BAD_HEADERS = Reply(550, "5.6.0", "Message refused: its header section cannot be read")
ALL_RECIPIENTS_REFUSED = Reply(550, "5.7.1", "Message refused for every recipient")
TEMPORARY_FAILURE = Reply(451, "4.3.0", "Temporary failure while storing the message; nothing was kept, try again")
LOGIN_THROTTLED = Reply(454, "4.7.0", "Too many failed logins from your address; try again later")
AUTH_INVALID = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")

# --- Relay between operators, outbound delivery and certificate login ---------------------------------------
RELAY_NO_CERTIFICATE = Reply(530, "5.7.0", "Relay refused: present your operator client certificate; mail between "
                                           "operators needs mutual TLS")
RELAY_CERT_EXPIRED = Reply(550, "5.7.1", "Relay refused: your client certificate (or its issuer) is expired or "
                                         "not yet valid; renew it")
RELAY_CERT_REVOKED = Reply(550, "5.7.1", "Relay refused: your client certificate is revoked")
RELAY_CERT_USAGE = Reply(550, "5.7.1", "Relay refused: your certificate is not valid for TLS client "
                                       "authentication (key usage)")
RELAY_CRL_UNAVAILABLE = Reply(454, "4.7.5", "Relay temporarily refused: our certificate revocation list is "
                                            "unavailable or out of date; try again later")
RELAY_PEER_NOT_WHITELISTED = Reply(550, "5.7.1", "Relay refused: your certificate names no domain of the MSSante "
                                                 "whitelist of trusted operators")
RELAY_SENDER_NOT_WHITELISTED = Reply(550, "5.7.1", "Sender refused: its domain is not on the MSSante whitelist")
RELAY_SENDER_NOT_CERTIFIED = Reply(550, "5.7.1", "Sender refused: its domain is not named by your client "
                                                 "certificate")
RELAY_SENDER_IS_OURS = Reply(550, "5.7.1", "Sender refused: this domain is served by this gateway and cannot "
                                           "arrive from another operator")
RELAY_THIRD_DOMAIN = Reply(550, "5.7.1", "Relaying denied: this gateway accepts mail from other operators only "
                                         "for its own domains")
RELAY_TLS_REQUIRED = Reply(530, "5.7.0", "Must issue a STARTTLS command first: operators relay only over TLS")
EXTERNAL_NO_CERTIFICATE = Reply(535, "5.7.8", "Authentication failed: no client certificate was presented on "
                                              "this TLS connection")
EXTERNAL_NOT_BOUND = Reply(535, "5.7.8", "Authentication failed: this client certificate is bound to no mailbox "
                                         "(or not to the one requested)")
PSC_INVALID = Reply(535, "5.7.8", "Authentication failed: the Pro Sante Connect token is not valid for this "
                                  "mailbox")
PSC_UNAVAILABLE = Reply(454, "4.7.0", "Temporary authentication failure: Pro Sante Connect cannot be reached to "
                                      "check the token; try again later")
PSC_NOT_OFFERED = Reply(504, "5.5.4", "Unrecognized authentication type: Pro Sante Connect is not configured here")
PSC_MALFORMED = Reply(501, "5.5.2", "Cannot read the SASL response")
BAD_DSN_PARAMETER = Reply(501, "5.5.4", "Bad DSN parameter (RFC 3461): NOTIFY=NEVER or a list of SUCCESS, "
                                        "FAILURE, DELAY; RET=FULL or HDRS; ENVID and ORCPT as xtext")

# --- SMTP session limits and failures (RFC 5321 4.5.3.2, RFC 3030, RFC 6531) ------------------------------------
TEMPORARY_ERROR = Reply(451, "4.3.0", "Temporary failure on our side; nothing was changed, try again later")
AUTH_TEMPORARY = Reply(454, "4.7.0", "Temporary authentication failure on our side; try again later")
IDLE_TIMEOUT = Reply(421, "4.4.2", "Timeout: nothing received for too long; closing the connection")
DATA_TIMEOUT = Reply(421, "4.4.2", "Timeout: the message arrived too slowly (minimum rate exceeded); nothing "
                                   "was stored, closing the connection")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors in this session; closing the connection")
TOO_MANY_PRE_TLS = Reply(421, "4.7.0", "Too many refused commands before STARTTLS; closing the connection")
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections or connection attempts from your address; "
                                           "try again later")
MESSAGE_RATE = Reply(451, "4.7.1", "Too many messages or recipients in the last minute; try again later")
LINE_TOO_LONG = Reply(500, "5.5.6", "Line too long (RFC 5321 4.5.3.1.6: 1000 octets at most); nothing was "
                                    "stored")
BDAT_SYNTAX = Reply(501, "5.5.4", "Syntax: BDAT <size> [LAST] (RFC 3030); closing the connection, since the "
                                  "chunk's end cannot be known")
BDAT_AFTER_FAILED_CHUNK = Reply(503, "5.5.1", "An earlier chunk of this message was refused; send RSET")
DATA_DURING_BDAT = Reply(503, "5.5.1", "DATA cannot follow BDAT in one transaction (RFC 3030 2); send RSET")
SENDER_HEADER_SPOOFED = Reply(550, "5.7.1", "The Sender header must be your own mailbox address, alone")
UTF8_WITHOUT_SMTPUTF8 = Reply(553, "5.6.7", "A non-ASCII address needs the SMTPUTF8 parameter on MAIL (RFC 6531)")
