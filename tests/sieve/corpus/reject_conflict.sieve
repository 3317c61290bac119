require ["reject", "fileinto"];
fileinto "Kept";
if exists "From" { reject "conflict"; }
