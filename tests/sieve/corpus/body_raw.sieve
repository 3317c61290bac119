require ["body", "fileinto"];
if body :raw :contains "Gr=FC=DFe" { fileinto "RawQP"; }
if body :raw :contains "JVBERi0" { fileinto "RawBase64"; }
