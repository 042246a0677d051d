# Two commands do everything on a fresh machine: `make demo` and `make test` (each creates .venv as needed).
.PHONY: demo test setup clean
setup:
	bash scripts/setup_venv.sh
demo:
	bash scripts/demo.sh $(ARGS)
test:
	bash scripts/test.sh $(ARGS)
clean:
	rm -rf .cache runs/demo
