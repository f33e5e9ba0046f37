# Set-up and everyday targets. Every target creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test train data fuzz clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Convert the bundled detector and C-simulate it on 20 val images.
demo: $(STAMP)
	$(BIN)/codesign convert --board pynq-z2 --out build/demo --force
	$(BIN)/codesign csim build/demo --count 20 --json build/demo/csim.json

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

# Retrain the bundled detector (about 20 minutes on 2 cores).
train: $(STAMP)
	$(BIN)/codesign train --out quantize/checkpoints/tiny_yolo_w6a6.pt --force

# Fuzz the JPEG stream parser and decoder model (1,000,000 executions).
fuzz: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt atheris
	$(BIN)/python benchmarks/fuzz_jpeg.py --write-seeds build/fuzz-corpus
	$(BIN)/python benchmarks/fuzz_jpeg.py -runs=1000000 -max_len=2048 build/fuzz-corpus

data: $(STAMP)
	$(BIN)/codesign data

clean:
	rm -rf build .pytest_cache
