redirect "a1@x.example"; redirect "a2@x.example"; redirect "a3@x.example";
redirect "a4@x.example"; redirect "a5@x.example";
