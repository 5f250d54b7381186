"""Messages of the study benchmark (module constants, asserted on by the tests)."""

from __future__ import annotations

MSG_CONFIG_SUFFIX = "config file {path!r}: use a .toml or .json file"
MSG_CONFIG_KEY = "config file {path!r}: unknown key(s) {keys}; known: {known}"
MSG_CONFIG_DATASET = ("config dataset {name!r}: {problem} (a CSV dataset needs 'csv', 'target' "
                      "and 'groups'; a registry dataset needs 'loader')")
MSG_UNKNOWN_CHOICE = "{what} {value!r} is not known; choose from {known}"
MSG_NO_CELLS = "the grid is empty: no (dataset, model, technique, method) combination is selected"
MSG_CSV_MISSING = ("CSV dataset {name!r}: column(s) {columns} have missing values in {n} row(s); "
                   "clean the file or set dropna = true for this dataset")
MSG_CSV_COLUMNS = "CSV dataset {name!r}: column(s) {columns} not in {path!r}"
MSG_NEED_DASK = ("--scheduler needs dask.distributed: pip install 'fairuse_opt[dask]' "
                 "({reason})")
MSG_SYSTEM_MISSING = ("the certified system (fairuse_opt.FairUseSystem) is not available in "
                      "this version of the library")
MSG_CAPPED = ("{what} is capped at {cap} training rows (this fold has {n}); the fit "
              "through the sequence of convex restrictions takes tens of seconds per thousand "
              "rows (raise ccp_max_train in the config to run it)")
MSG_CAPPED_DECOUPLED = ("decoupled fits are capped at {cap} training rows (this fold has "
                        "{n}); one full model per group through the conic solver takes minutes "
                        "there (raise decoupled_max_train in the config to run it)")
MSG_FOLDS = "folds={value!r} is invalid: need an integer >= 2"
MSG_CONFIG_UNREADABLE = "config file {path!r} cannot be read as {kind}: {reason}"
MSG_CONFIG_VALUE = "config file {path!r}: {key} = {value} is invalid: {expected}"
MSG_CONFIG_DATASET_NAME = ("config dataset {name}: a dataset name is 1 to 80 letters, digits, '_', '-' "
                           "or '.' (not first), as it names the cell files")
MSG_CONFIG_DATASET_TWICE = "config dataset {name!r} is listed twice; give each dataset its own name"
MSG_CSV_UNREADABLE = ("CSV dataset {name!r}: cannot read {path!r}: {reason}; set 'csv' in the config to your "
                      "CSV file (a relative path is read from the config file's folder) and 'target' and "
                      "'groups' to its columns")
