require ["variables", "fileinto"];
set :upper "a" "loud";
set :lowerfirst "b" "QUIET";
set :upperfirst :lower "c" "mIxEd";
set :length "d" "four";
set :quotewildcard "e" "a*b?c";
fileinto "${a}-${b}-${c}-${d}";
if string :is "${e}" "a\\*b\\?c" { fileinto "Quoted"; }
