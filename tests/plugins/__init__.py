"""pytest plugins for real services (services.py) and Chromium through Playwright (browser.py)."""
