# Mail clients from Debian the suite drives against the gateway: curl (SMTP/IMAP over TLS), mbsync (isync),
# offlineimap, neomutt under tmux, and swaks (with Net::SSLeay for STARTTLS).
ensure_packages curl isync offlineimap3 neomutt tmux swaks libnet-ssleay-perl
