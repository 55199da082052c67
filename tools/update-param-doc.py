"""Rewrites the parameter table of docs/postconf.md from `postconf -T`."""
import subprocess
import sys

postconf, doc = sys.argv[1], sys.argv[2]
text = open(doc, encoding="utf-8").read()
start = text.index("| Name | Type | Default | Meaning |")
end = text.index("\n## SEE ALSO")
table = subprocess.run([postconf, "-T"], capture_output=True, text=True, check=True).stdout
open(doc, "w", encoding="utf-8").write(text[:start] + table + "\n" + text[end:])
