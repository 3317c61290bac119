redirect "archive@backup.example";
