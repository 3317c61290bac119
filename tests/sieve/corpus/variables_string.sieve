require ["variables", "fileinto"];
set "who" "${undefined}x";
if string :is "${who}" "x" { fileinto "Unset"; }
if header :matches "From" "*<*@*>" { set "dom" "${3}"; }
if string :contains "${dom}" "example" { fileinto "Dom/${dom}"; }
