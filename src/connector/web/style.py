"""The status page's inline stylesheet (no external assets)."""

from __future__ import annotations

__all__ = ["CSS"]

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f5f8;color:#1c2733;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:1240px;margin:0 auto;padding:20px 24px 40px}
header{display:flex;align-items:baseline;justify-content:space-between;gap:16px;flex-wrap:wrap;margin-bottom:14px}
h1{font-size:20px;margin:0}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:#52606d;margin:0 0 10px}
h3{font-size:13px;margin:12px 0 6px;color:#334}
.meta{color:#66788a;font-size:12px}
.badge{display:inline-block;padding:3px 10px;border-radius:999px;font-weight:600;font-size:13px}
.ok{background:#dff5e5;color:#17653a}.bad{background:#fde2e1;color:#9b1c1c}.idle{background:#eef1f4;color:#52606d}
.alerts{background:#fff4f3;border:1px solid #f3c1bd;border-radius:8px;padding:10px 16px;margin-bottom:16px}
.alerts ul{margin:0;padding-left:18px}.alerts li{margin:3px 0;color:#8a1c1c}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(370px,1fr));gap:16px;margin-bottom:16px}
section{background:#fff;border:1px solid #dde3ea;border-radius:8px;padding:14px 16px;overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{padding:5px 7px;border-bottom:1px solid #edf0f3;text-align:left;white-space:nowrap}
th{font-size:12px;color:#66788a;font-weight:600}
tr:last-child td{border-bottom:none}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.wrap{white-space:normal;min-width:160px}
.top{grid-template-columns:minmax(0,1fr) minmax(0,1.25fr)}
@media (max-width:960px){.top{grid-template-columns:minmax(0,1fr)}}
.err{white-space:normal;min-width:220px;max-width:420px;font-size:12px;color:#52606d}
.muted{color:#8796a5}.warn{color:#b42318;font-weight:600}
.empty{color:#8796a5;font-style:italic;margin:4px 0}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
form.inline{display:inline}
button.link{background:none;border:none;padding:0;color:#66788a;font-size:12px;text-decoration:underline;cursor:pointer}
.signin{max-width:420px}
.signin form{display:flex;flex-direction:column;gap:8px}
.signin input{padding:7px 9px;border:1px solid #c5ced8;border-radius:6px;font:inherit}
.tools{margin:-4px 0 14px}
form.lookup{display:inline-flex;align-items:center;gap:6px;font-size:12px;color:#52606d}
form.lookup input{width:12em;padding:4px 7px;border:1px solid #c5ced8;border-radius:6px;font:12px monospace}
form.lookup button{padding:4px 10px;border:1px solid #c5ced8;border-radius:6px;background:#fff;font-size:12px}
#timeline td:first-child,#fields td:last-child{width:1%}
.verdict{font-size:17px;font-weight:600;padding:12px 16px;border-radius:8px;margin-bottom:6px;white-space:normal}
.signin button{align-self:flex-start;padding:6px 16px;border:0;border-radius:6px;background:#1c2733;color:#fff}
"""
