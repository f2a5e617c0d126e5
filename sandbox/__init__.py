"""Local emulators of GitHub, Supabase and Vercel.

Nothing here imports the runner or the dispatcher: the emulators judge those clients and must
never share code with them (a shared bug would pass).
"""
