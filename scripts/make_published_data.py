"""Builds slac/data/slac_published.csv.gz from the per-seed evaluation returns the SLAC authors
released with their code (shared/anchors/dm_control_<task>_slac.csv): the columns the plot needs,
nothing else. Usage: python scripts/make_published_data.py ../shared/anchors"""

import csv
import gzip
import sys
from pathlib import Path

src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/anchors")
out = Path(__file__).resolve().parent.parent / "slac" / "data" / "slac_published.csv.gz"
with gzip.open(out, "wt", newline="") as f:
    w = csv.writer(f)
    w.writerow(["task", "decoder_var", "trial_id", "env_step", "return"])
    for path in sorted(src.glob("dm_control_*_slac.csv")):
        for row in csv.DictReader(open(path)):
            task = f"{row['domain_name']}-{row['task_name']}"
            w.writerow([task, float(row["decoder_var"]), int(float(row["trial_id"])),
                        int(float(row["OriginalEnvironmentSteps"])),
                        f"{float(row['AverageReturnEvalPolicy']):.2f}"])
print(out, out.stat().st_size)
