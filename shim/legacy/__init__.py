"""The legacy compute image routes: pure translators and thin handlers."""
