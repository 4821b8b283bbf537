# Chromium and its WebDriver from Debian for the web console's browser tests (tests/web): Selenium is given
# /usr/bin/chromium and /usr/bin/chromedriver, so nothing downloads a browser.
ensure_packages chromium chromium-driver
