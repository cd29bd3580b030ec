# The two set-up commands of the README.
.PHONY: start test

start:  ## install into .venv and run the demo on SQLite
	scripts/start

test:   ## install the test dependencies into .venv and run the whole test suite
	scripts/test
