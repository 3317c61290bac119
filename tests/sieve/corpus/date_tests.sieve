require ["date", "relational", "fileinto", "variables"];
# Header parts are fixed by each message's Date field; currentdate only checks the year.
if currentdate :value "ge" "year" "2020" { fileinto "Recent"; }
if date :originalzone :is "date" "date" "2026-12-06" { fileinto "Dec6"; }
if date :zone "+0000" :value "lt" "date" "hour" "09" { fileinto "Morning"; }
if date :originalzone :matches "date" "zone" "*" { fileinto "Zone${1}"; }
if date :zone "-0800" :is "date" "weekday" "6" { fileinto "SaturdayInLA"; }
