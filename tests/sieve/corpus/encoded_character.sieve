require ["encoded-character", "fileinto", "variables", "body"];
# RFC 5228 §2.4.2.4: ${hex:…} and ${unicode:…} in strings.
if header :contains "Subject" "${hex:63 61 66 c3 a9}" { fileinto "Cafe${unicode:e9}"; }
if header :contains "Subject" "${unicode:52 65 6c}ayed" { fileinto "Relayed"; }
if header :contains "From" "${hex:40}" { fileinto "HasAt"; }
if header :is "Subject" "${hex:4}" { fileinto "Never"; }
if body :raw :contains "${unicode:40} noon" { fileinto "AtNoon"; }
set "x" "${hex:6c 69 73 74}";
if header :contains "List-Id" "${x}" { fileinto "L${unicode:49}ST"; }
if header :contains "Subject" "${hex:4}" { fileinto "Literal"; }
